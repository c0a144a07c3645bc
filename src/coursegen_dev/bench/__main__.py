from coursegen_dev.bench.cli import main

main()

from coursegen.bench.cli import main

main()

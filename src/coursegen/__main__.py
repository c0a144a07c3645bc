from coursegen.cli import main

main()

from kaos.cli.main import main

main()

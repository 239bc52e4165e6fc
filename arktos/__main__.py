from arktos.cli.main import main

main()

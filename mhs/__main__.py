from mhs.cli.main import main

main()

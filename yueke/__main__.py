from yueke.cli import main

main()

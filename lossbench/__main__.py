from lossbench.cli import main

main()

from routeway.cli import main

main()

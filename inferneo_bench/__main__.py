from inferneo_bench.cli import main

main()

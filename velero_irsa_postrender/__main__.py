from velero_irsa_postrender.cli import main

main()

from cart_pipeline.cli.main import main

main()

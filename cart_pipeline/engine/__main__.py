"""`python -m cart_pipeline.engine`: parse CLI/env into a Config and run the Server."""

from cart_pipeline.engine import main

if __name__ == "__main__":
    main()

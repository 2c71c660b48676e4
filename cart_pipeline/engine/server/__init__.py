"""REST server speaking ksqlDB's HTTP API."""

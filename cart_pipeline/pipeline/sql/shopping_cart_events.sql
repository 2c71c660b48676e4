-- The tutorial's stream over the event log. Run it by hand with the ksqlDB CLI, or
-- `cart-pipeline ksql "$(cat shopping_cart_events.sql)"`.
-- The topic itself is created by the `shopping_cart_events_topic` asset (partitions and
-- replication are configured there), so this statement names it without PARTITIONS.
CREATE STREAM shopping_cart_events (customer VARCHAR, item VARCHAR, qty INT)
  WITH (kafka_topic='shopping_cart_events', value_format='json');

-- The tutorial's aggregate: the event log folded into each customer's current cart.
-- Read the topic from its beginning, and commit (flush the cache) every 3 seconds.
SET 'auto.offset.reset'='earliest';
SET 'ksql.streams.commit.interval.ms'='3000';
CREATE TABLE current_shopping_cart WITH (KEY_FORMAT='JSON') AS
  SELECT customer, item, SUM(qty) as total_qty FROM shopping_cart_events
  GROUP BY customer, item EMIT CHANGES;

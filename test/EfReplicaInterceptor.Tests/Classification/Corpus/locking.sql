-- expect: primary locking-read
SELECT * FROM orders WHERE id = 1 FOR UPDATE
-- expect: primary locking-read
select * from orders for update nowait
-- expect: primary locking-read
SELECT * FROM orders FOR UPDATE SKIP LOCKED LIMIT 1
-- expect: primary locking-read
SELECT * FROM orders FOR NO KEY UPDATE
-- expect: primary locking-read
SELECT * FROM orders FOR SHARE
-- expect: primary locking-read
SELECT * FROM orders FOR KEY SHARE
-- expect: primary locking-read
SELECT o.* FROM orders o JOIN customers c ON c.id = o.customer_id FOR UPDATE OF o
-- expect: primary locking-read
SELECT * FROM orders o, customers c FOR UPDATE OF o NOWAIT FOR SHARE OF c SKIP LOCKED
-- expect: primary locking-read
SELECT * FROM orders o WHERE o.id = 1 FOR UPDATE OF o FOR SHARE OF o
-- expect: primary locking-read
SELECT * FROM (SELECT * FROM orders FOR UPDATE) AS locked
-- expect: primary locking-read
SELECT * FROM customers WHERE id IN (SELECT customer_id FROM orders FOR SHARE)
-- expect: primary locking-read
WITH locked AS (SELECT id FROM orders WHERE status = 'new' FOR UPDATE SKIP LOCKED) SELECT * FROM locked
-- expect: primary locking-read
WITH a AS (SELECT 1), b AS (SELECT * FROM (SELECT id FROM orders FOR NO KEY UPDATE) x) SELECT * FROM a, b
-- expect: primary locking-read
SELECT * FROM orders FOR/**/UPDATE
-- expect: primary locking-read
SELECT * FROM orders FOR -- row locks
UPDATE
-- expect: primary locking-read
SELECT * FROM orders fOr nO KeY uPdAtE
-- expect: primary locking-read
SELECT * FROM orders FOR
    SHARE
-- expect: primary locking-read
SELECT * FROM orders ORDER BY id LIMIT 1 FOR UPDATE
-- expect: primary locking-read
SELECT 1 AS for FROM orders FOR UPDATE
-- expect: primary locking-read
TABLE orders FOR UPDATE
-- expect: primary locking-read
(SELECT * FROM orders) FOR UPDATE
-- expect: primary locking-read
EXPLAIN ANALYZE SELECT * FROM orders FOR UPDATE
-- expect: primary locking-read
COPY (SELECT * FROM orders FOR UPDATE) TO STDOUT
-- expect: primary locking-read
SELECT 1; SELECT * FROM orders FOR KEY SHARE
-- expect: primary locking-read
LOCK TABLE orders IN ACCESS EXCLUSIVE MODE
-- expect: primary locking-read
LOCK orders
-- expect: primary locking-read
lock table customers in share row exclusive mode nowait
-- expect: primary locking-read
LOCK TABLE orders IN ACCESS SHARE MODE

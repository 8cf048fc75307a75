-- expect: replica read
-- INSERT INTO audit_log VALUES (1)
SELECT 1
-- expect: replica read
/* DELETE FROM orders; */ SELECT 1
-- expect: replica read
/* outer /* inner DELETE FROM orders */ still a comment: UPDATE orders SET note = 'x' */ SELECT 1
-- expect: replica read
SELECT 1 /* a /* b /* c */ */ FOR UPDATE */
-- expect: replica read
SELECT 1 /*/ slash-star-slash opens, and this does not close: /*/ */ */
-- expect: replica read
SELECT 2*/*c*/3, 10 -- 2
 - 3
-- expect: replica read
SELECT 'it''s; DELETE FROM orders; --'
-- expect: replica read
SELECT E'\'; DELETE FROM orders; --'
-- expect: replica read
SELECT e'a\\', 'DELETE FROM orders', E'tab\there\nnew ''line'' \x41'
-- expect: replica read
SELECT U&'d\0061t\+000061 update', U&'!0041' UESCAPE '!'
-- expect: replica read
SELECT $$DELETE FROM orders; $$ AS body
-- expect: replica read
SELECT $body$ UPDATE orders SET note = 'x'; $not$ still inside $body$
-- expect: replica read
SELECT $a$ $b$ INSERT INTO audit_log $b$ $a$
-- expect: replica read
SELECT $_$x$_$, $a1$ ; DROP TABLE orders; $a1$, $A$case$a$ still inside $A$
-- expect: replica read
SELECT 'a'
'b' AS continued
-- expect: replica read
SELECT x'FF'::int, b'101'::int, n'national', X'0a' AS hex
-- expect: replica read
SELECT "update", "insert" FROM (SELECT 1 AS "update", 2 AS "insert") AS "for update"
-- expect: replica read
select 1 as "a""b", 2 as "UPDATE ""quoted"" INTO"
-- expect: replica read
SELECT 1 AS update, 2 AS into, 3 AS delete, 4 AS "for"
-- expect: replica read
SELECT 1 AS a$b$c, 2 AS über, 3 AS "Ωmega", 'ünïcödé ; DELETE' AS text
-- expect: replica read
SELECT 1.5e10, .5, 5., 1e-3, 1E+3, 4.2::float8
-- expect: replica read
SELECT * FROM orders WHERE id = $1
-- expect: replica read
SELECT * FROM orders WHERE id = $1 AND status = $2 LIMIT $3
-- expect: replica read
SELECT * FROM orders WHERE id = @id AND status = @update AND note = @into
-- expect: replica read
SELECT * FROM orders WHERE customer_id = ANY (@ids) AND tags @> @tags AND data @> '{}'
-- expect: replica read
SELECT 1 -- trailing comment ; DELETE FROM orders
-- expect: replica read
SELECT 1 --no newline at the end; DELETE FROM orders
-- expect: replica read
SELECT/*nospace*/1/**/AS/**/one
-- expect: replica read
SELECT	1	FROM	orders	WHERE	id	=	1
-- expect: replica read
SELECT '/*' AS opens, 1 AS one -- */ DELETE
-- expect: replica read
SELECT 1 /* it's not a string */ , 2 /* "nor an identifier */
-- expect: replica read
SELECT '$$' AS dollars, "$$" FROM (SELECT 1 AS "$$") s
-- expect: replica read
SELECT $$ ' $$ AS quote_in_dollars, ' $$ ' AS dollars_in_quotes
-- expect: replica read
SELECT 1::int, 'x'::text, '{1,2}'::int[], (2)::bigint
-- expect: replica read
SELECT id FROM orders WHERE status = 'update' AND note IS DISTINCT FROM 'delete'
-- expect: replica read
SELECT update_count, insert_count, "delete", for_update FROM (SELECT 1 AS update_count, 2 AS insert_count, 3 AS "delete", 4 AS for_update) s
-- expect: primary write-statement
/* SELECT */ DELETE FROM audit_log
-- expect: primary write-statement
-- SELECT
DELETE FROM audit_log
-- expect: primary write-statement
SELECT 'x'; DELETE FROM audit_log; SELECT 'y'
-- expect: primary write-statement
SELECT $$ ; $$; UPDATE t SET v = $$x$$
-- expect: primary write-statement
SELECT E'\\'; DELETE FROM audit_log; --'
-- expect: primary write-statement
SELECT 'it''s'; DELETE FROM audit_log
-- expect: primary write-statement
SELECT "x;" FROM (SELECT 1 AS "x;") s; DELETE FROM audit_log
-- expect: primary write-statement
SELECT 1 /* /* */ still comment */; DELETE FROM audit_log
-- expect: primary write-statement
SELECT $a$ $b$ $a$; DELETE FROM audit_log
-- expect: primary write-statement
DeLeTe FrOm audit_log
-- expect: primary write-statement
/**/INSERT INTO audit_log (message) VALUES ('x')
-- expect: primary write-statement
((SELECT 1)); INSERT INTO audit_log (message) VALUES ('after parentheses')
-- expect: primary write-statement
SELECT U&'\0027'; DELETE FROM audit_log
-- expect: primary write-statement
SELECT * FROM orders WHERE id = @id; UPDATE t SET v = @v
-- expect: primary write-statement
SELECT 1 --
; DELETE FROM audit_log
-- expect: primary write-statement
SELECT '--' AS not_a_comment; DELETE FROM audit_log
-- expect: primary write-statement
SELECT 'E''' AS e; DELETE FROM audit_log
-- expect: primary write-statement
SELECT 1 AS "/*"; DELETE FROM audit_log; SELECT 1 AS "*/"
-- expect: primary write-statement
SELECT * FROM orders
WHERE id = 1
;
UPDATE orders
SET note = 'multi-line'
WHERE id = 1
-- expect: primary locking-read
SELECT 'FOR' AS f FROM orders FOR UPDATE
-- expect: primary locking-read
SELECT "for" FROM t FOR SHARE

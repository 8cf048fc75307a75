-- expect: primary unrecognized
   
-- expect: primary unrecognized
-- only a comment
-- expect: primary unrecognized
/* only a comment */ ;
-- expect: primary unrecognized
-- oracle-error: 42601
SELECT 'unterminated
-- expect: primary unrecognized
-- oracle-error: 42601
SELECT 1 /* unterminated /* nested */ comment
-- expect: primary unrecognized
-- oracle-error: 42601
SELECT "unterminated
-- expect: primary unrecognized
-- oracle-error: 42601
SELECT $$unterminated
-- expect: primary unrecognized
-- oracle-error: 42601
SELECT $tag$unterminated $other$
-- expect: primary unrecognized
-- oracle-error: 42601
SELECT E'unterminated\'
-- expect: primary unrecognized
-- oracle-error: 42601
SELECT 1 \g
-- expect: primary unrecognized
-- oracle-error: 42601
SELECT {1}
-- expect: primary unrecognized
-- oracle-error: 42601
FOO BAR
-- expect: primary unrecognized
-- oracle-error: 42601
"select" 1
-- expect: primary unrecognized
-- oracle-error: 42601
WAIT FOR LSN '0/0'
-- expect: primary unrecognized
-- oracle-error: 42601
SELECT $x
-- expect: primary unrecognized
-- oracle-error: 42601
(
-- expect: primary unrecognized
-- oracle-error: 42601
)
-- expect: primary unrecognized
-- oracle-error: 42601
SELECT 1; )
-- expect: primary unrecognized
-- oracle-error: 42601
(INSERT INTO audit_log (message) VALUES ('x'))
-- expect: primary unrecognized
SELECT U&"d\0061ta" FROM orders
-- expect: primary unrecognized
-- oracle-error: 42601
SELECT 1; U&"d\0061ta"
-- expect: primary unrecognized
-- oracle-error: 42601
123
-- expect: primary unrecognized
-- oracle-error: 42601
'SELECT 1'

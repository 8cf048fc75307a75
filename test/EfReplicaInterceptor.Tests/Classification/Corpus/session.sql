-- expect: primary session-statement
SET search_path TO public
-- expect: primary session-statement
SET LOCAL statement_timeout = '5s'
-- expect: primary session-statement
set session work_mem = '16MB'
-- expect: primary session-statement
SET TIME ZONE 'UTC'
-- expect: primary session-statement
SET TRANSACTION ISOLATION LEVEL REPEATABLE READ
-- expect: primary session-statement
SET TRANSACTION READ ONLY
-- expect: primary session-statement
SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY
-- expect: primary session-statement
SET ROLE corpus_reader
-- expect: primary session-statement
SET SESSION AUTHORIZATION DEFAULT
-- expect: primary session-statement
SET CONSTRAINTS ALL DEFERRED
-- expect: primary session-statement
RESET work_mem
-- expect: primary session-statement
RESET ALL
-- expect: primary session-statement
BEGIN
-- expect: primary session-statement
BEGIN ISOLATION LEVEL SERIALIZABLE READ ONLY DEFERRABLE
-- expect: primary session-statement
begin transaction; select 1
-- expect: primary session-statement
START TRANSACTION READ WRITE
-- expect: primary session-statement
COMMIT
-- expect: primary session-statement
COMMIT AND CHAIN
-- expect: primary session-statement
END
-- expect: primary session-statement
ROLLBACK
-- expect: primary session-statement
ABORT
-- expect: primary session-statement
-- oracle-error: 3B001
ROLLBACK TO SAVEPOINT s1
-- expect: primary session-statement
SAVEPOINT s1
-- expect: primary session-statement
-- oracle-error: 3B001
RELEASE SAVEPOINT s1
-- expect: primary session-statement
PREPARE TRANSACTION 'corpus-tx'
-- expect: primary session-statement
-- oracle-error: 42704
COMMIT PREPARED 'corpus-tx'
-- expect: primary session-statement
-- oracle-error: 42704
ROLLBACK PREPARED 'corpus-tx'
-- expect: primary session-statement
PREPARE get_order (int) AS SELECT * FROM orders WHERE id = $1
-- expect: primary session-statement
-- oracle-error: 26000
EXECUTE get_order (1)
-- expect: primary session-statement
-- oracle-error: 26000
DEALLOCATE get_order
-- expect: primary session-statement
DEALLOCATE ALL
-- expect: primary session-statement
LISTEN order_events
-- expect: primary session-statement
UNLISTEN *
-- expect: primary session-statement
NOTIFY order_events, 'payload'
-- expect: primary session-statement
DISCARD ALL
-- expect: primary session-statement
DISCARD TEMP
-- expect: primary session-statement
LOAD 'auto_explain'
-- expect: primary session-statement
DECLARE c CURSOR FOR SELECT * FROM orders
-- expect: primary session-statement
DECLARE c2 NO SCROLL CURSOR WITH HOLD FOR SELECT 1
-- expect: primary session-statement
-- oracle-error: 34000
FETCH NEXT FROM c
-- expect: primary session-statement
-- oracle-error: 34000
MOVE FORWARD 2 IN c
-- expect: primary session-statement
-- oracle-error: 34000
CLOSE c
-- expect: primary session-statement
SELECT 1; SET statement_timeout = 0

-- expect: primary write-statement
INSERT INTO "Blogs" ("Name", "Url")
VALUES (@p0, @p1)
RETURNING "Id";
-- expect: primary write-statement
INSERT INTO "Posts" ("BlogId", "Title")
VALUES (@p0, @p1)
RETURNING "Id";
INSERT INTO "Posts" ("BlogId", "Title")
VALUES (@p2, @p3)
RETURNING "Id";
-- expect: primary write-statement
UPDATE "Blogs" SET "Name" = @p0
WHERE "Id" = @p1 AND xmin = @p2
RETURNING xmin;
-- expect: primary write-statement
DELETE FROM "Posts"
WHERE "Id" = @p0;
-- expect: primary write-statement
DELETE FROM "Posts"
WHERE "Id" = @p0
RETURNING 1;
-- expect: primary write-statement
UPDATE "Posts" SET "Views" = @p0
WHERE "Id" = @p1;
SELECT "Rating"
FROM "Blogs"
WHERE "Id" = @p2;
-- expect: primary write-statement
INSERT INTO "Labels" ("Name")
VALUES (@p0), (@p1), (@p2)
RETURNING "Id";
-- expect: primary write-statement
MERGE INTO "Labels" AS l USING (
VALUES (@p0),
(@p1)) AS i ("Name") ON l."Name" = i."Name"
WHEN NOT MATCHED THEN
INSERT ("Name")
VALUES (i."Name");
-- expect: primary write-statement
-- Bulk update

UPDATE "Posts" AS p
SET "Views" = p."Views" + 1
WHERE p."BlogId" = @blogId
-- expect: primary write-function
SELECT nextval('"EntityFrameworkHiLoSequence"')
-- expect: primary write-function
SELECT nextval('comment_hilo')
-- expect: replica read
-- Dashboard query
-- owner: reporting team; do not DELETE this tag

SELECT b."Id", b."Name"
FROM "Blogs" AS b
WHERE b."Name" ILIKE @term
ORDER BY b."Name"
LIMIT @p
-- expect: replica read
-- file: /src/App/Queries.cs:42

SELECT p."Id", p."Title", p."Views"
FROM "Posts" AS p
WHERE p."BlogId" = ANY (@ids) AND p."Title" LIKE @term_startswith ESCAPE '\'
-- expect: replica read
SELECT b."Id", b."Settings" ->> 'Theme' AS "Theme", CAST(b."Settings" ->> 'AllowComments' AS boolean) AS "AllowComments"
FROM "Blogs" AS b
WHERE (b."Settings" -> 'Editors') @> to_jsonb(@editor::text) AND b."Tags" && @tags AND b."Mood" = 'happy'::mood
-- expect: replica read
SELECT count(*)::int
FROM "Posts" AS p
WHERE p."PublishedOn" >= @since AND date_part('year', p."PublishedOn")::int = 2024
-- expect: replica read
SELECT EXISTS (
    SELECT 1
    FROM "Posts" AS p
    WHERE p."Title" LIKE @term_contains)

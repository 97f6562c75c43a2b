-- iothub schema, version 13: firmware chunks are stored uncompressed out of line, so that
-- a download reads any slice of a chunk (substring) without fetching and inflating the
-- whole 256 KiB (images are compressed already; compressing them again gains nothing).
ALTER TABLE firmware_chunks ALTER COLUMN data SET STORAGE EXTERNAL;

"""One thin handler per Lambda function; each delegates to chalicelib."""

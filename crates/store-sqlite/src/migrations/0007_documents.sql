-- Compliance documents (SBOMs, advisories, the KEV catalogue, VEX), kept whole under their kind and name; a
-- later import under the same name replaces the row, in the transaction of its `compliance.document_imported`
-- event.
CREATE TABLE documents (
    kind        TEXT NOT NULL,
    key         TEXT NOT NULL,
    digest      BLOB NOT NULL,
    body        BLOB NOT NULL,
    imported_at INTEGER NOT NULL,
    PRIMARY KEY (kind, key)
);

-- Compliance documents (SBOMs, advisories, the KEV catalogue, VEX), kept whole under their kind and name; a
-- later import under the same name replaces the row, in the transaction of its `compliance.document_imported`
-- event.
CREATE TABLE documents (
    kind        text NOT NULL,
    key         text NOT NULL,
    digest      bytea NOT NULL,
    body        bytea NOT NULL,
    imported_at bigint NOT NULL,
    PRIMARY KEY (kind, key)
);

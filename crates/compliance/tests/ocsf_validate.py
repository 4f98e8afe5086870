"""Validates OCSF events (JSON lines) against the JSON Schema of their class in an OCSF release.

Usage: ocsf_validate.py VERSION FILE. The schema comes from ocsf-json-schema (which ships each release's
schema) with the profiles the event's metadata names; jsonschema checks it (Draft 2020-12). Prints every
error with its line and path; exits 1 if there is any.
"""

import json
import sys

try:
    from jsonschema import Draft202012Validator
    from ocsf_json_schema import OcsfJsonSchemaEmbedded, get_ocsf_schema
except ImportError as e:
    sys.exit(f"{e}: run scripts/test, which installs the validators")


def main(version: str, path: str) -> int:
    ocsf = OcsfJsonSchemaEmbedded(get_ocsf_schema(version=version))
    errors = 0
    events = 0
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            event = json.loads(line)
            events += 1
            name = ocsf.lookup_class_name_from_uid(class_uid=event.get("class_uid"))
            profiles = event.get("metadata", {}).get("profiles", [])
            schema = ocsf.get_class_schema(class_name=name, profiles=profiles)
            for e in Draft202012Validator(schema).iter_errors(event):
                errors += 1
                where = "/".join(map(str, e.absolute_path)) or "(event)"
                print(f"line {n}: {where}: {e.message}")
    print(f"{events} events, {errors} errors (OCSF {version})")
    return 1 if errors or not events else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))

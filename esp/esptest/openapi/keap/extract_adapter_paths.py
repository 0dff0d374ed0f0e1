"""Derive keap/adapter-paths.yaml from the vendor's keap/swagger.yml (OpenAPI 3.1.0, byte-for-byte copy).

Keeps the paths the keap adapter and fake use (all their operations, verbatim) plus every component they
reference, transitively, and declares the result OpenAPI 3.0.3 so kin-openapi validates it with its native
3.0 schema validator (its 3.1 path compiles a JSON Schema 2020 validator per value: ~20 ms per exchange).
3.1-only constructs are rewritten to their 3.0 equivalents (reported on stderr); nothing else changes.
Run from esp/esptest/openapi/keap: python3 extract_adapter_paths.py > adapter-paths.yaml
"""
import sys, yaml, json

PATHS = ["/rest/v2/tags", "/rest/v2/tags/{tag_id}/contacts:applyTags", "/rest/v2/contacts",
         "/rest/v2/contacts/{contact_id}", "/rest/v2/emailAddresses/{email}/status"]

doc = yaml.safe_load(open("swagger.yml"))
out = {"openapi": "3.0.3", "info": dict(doc["info"]), "servers": doc.get("servers", []),
       "security": doc.get("security", []), "paths": {}, "components": {}}
out["info"]["title"] += " (adapter paths, derived from swagger.yml)"
for p in PATHS:
    out["paths"][p] = doc["paths"][p]

seen = set()
def refs(v):
    if isinstance(v, dict):
        for k, x in v.items():
            if k == "$ref" and isinstance(x, str) and x.startswith("#/components/"):
                yield x
            else:
                yield from refs(x)
    elif isinstance(v, list):
        for x in v:
            yield from refs(x)

todo = list(refs(out["paths"]))
if "securitySchemes" in doc["components"]:
    out["components"]["securitySchemes"] = doc["components"]["securitySchemes"]
while todo:
    r = todo.pop()
    if r in seen:
        continue
    seen.add(r)
    _, _, kind, name = r.split("/", 3)
    v = doc["components"][kind][name]
    out["components"].setdefault(kind, {})[name] = v
    todo.extend(refs(v))

notes = []
def conv(v, where):
    if isinstance(v, dict):
        t = v.get("type")
        if isinstance(t, list):
            types = [x for x in t if x != "null"]
            if len(types) == 1:
                v["type"] = types[0]
            else:
                del v["type"]
            if "null" in t:
                v["nullable"] = True
            notes.append(f"{where}: type {t}")
        if "const" in v:
            v["enum"] = [v.pop("const")]
            notes.append(f"{where}: const")
        if "examples" in v and isinstance(v["examples"], list) and "content" not in v:
            ex = v.pop("examples")
            if ex:
                v.setdefault("example", ex[0])
            notes.append(f"{where}: examples")
        for k in ("exclusiveMinimum", "exclusiveMaximum"):
            if k in v and not isinstance(v[k], bool):
                v[k.replace("exclusive", "").lower()] = v[k]
                v[k] = True
                notes.append(f"{where}: {k}")
        for k in ("$schema", "$id", "$defs", "prefixItems", "unevaluatedProperties", "dependentRequired", "contentMediaType"):
            if k in v:
                notes.append(f"{where}: UNHANDLED {k}")
        for k, x in v.items():
            conv(x, where + "/" + str(k))
    elif isinstance(v, list):
        for i, x in enumerate(v):
            conv(x, f"{where}/{i}")

conv(out["paths"], "#/paths")
conv(out["components"], "#/components")
for n in notes:
    print(n, file=sys.stderr)
print("# Derived from swagger.yml (Keap's OpenAPI 3.1.0 document, a byte-for-byte vendor copy) by")
print("# extract_adapter_paths.py: the paths the adapter uses and the components they reference, declared")
print("# OpenAPI 3.0.3. Regenerate rather than edit.")
yaml.safe_dump(out, sys.stdout, sort_keys=False, allow_unicode=True, width=120)

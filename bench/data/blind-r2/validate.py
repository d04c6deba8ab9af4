"""Validate the blind evaluation sets: every line parses, ids unique, labels/languages valid."""
import json, collections, sys, pathlib

HERE = pathlib.Path(__file__).parent
LABELS = {"High", "Medium", "Low"}
LANGS = {"en", "de", "fr", "es", "nl", "it", "pt"}
KEYS = {"id", "subject", "body", "label", "customer_claimed", "language", "rationale"}
ok = True
all_ids = set()
for name in ["backup", "hosting", "storefront"]:
    path = HERE / f"{name}.jsonl"
    labels, langs, ids = collections.Counter(), collections.Counter(), set()
    for ln, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        try:
            r = json.loads(line)
        except json.JSONDecodeError as e:
            print(f"{path.name}:{ln}: parse error {e}"); ok = False; continue
        if set(r) != KEYS: print(f"{path.name}:{ln}: keys {sorted(r)}"); ok = False
        if not str(r.get("id", "")).startswith(name + "-"): print(f"{path.name}:{ln}: bad id {r.get('id')}"); ok = False
        if r.get("id") in ids or r.get("id") in all_ids: print(f"{path.name}:{ln}: duplicate id {r.get('id')}"); ok = False
        ids.add(r.get("id"))
        if r.get("label") not in LABELS: print(f"{path.name}:{ln}: bad label {r.get('label')}"); ok = False
        if r.get("language") not in LANGS: print(f"{path.name}:{ln}: bad language {r.get('language')}"); ok = False
        for k in ("subject", "body", "rationale"):
            if not isinstance(r.get(k), str) or not r[k].strip(): print(f"{path.name}:{ln}: empty {k}"); ok = False
        if not isinstance(r.get("customer_claimed"), str): print(f"{path.name}:{ln}: customer_claimed not str"); ok = False
        labels[r.get("label")] += 1; langs[r.get("language")] += 1
    all_ids |= ids
    n = sum(labels.values())
    print(f"{name}: {n} lines, {len(ids)} unique ids")
    print("  labels:   " + ", ".join(f"{k}={labels[k]} ({100*labels[k]/n:.0f}%)" for k in ["High", "Medium", "Low"]))
    print("  languages: " + ", ".join(f"{k}={v}" for k, v in sorted(langs.items(), key=lambda kv: -kv[1])))
print("OK" if ok else "PROBLEMS FOUND")
sys.exit(0 if ok else 1)

//! GitLab's `!reference [key, key, ...]` YAML tag: reading it (the YAML parser hands a tag to
//! serde as an enum, which a plain JSON value refuses) and resolving it after `include:` and
//! `extends:`, as GitLab does (`Config#build_config`: includes, extends, then tags). A
//! reference is replaced by the value it names; one inside a list stays a nested list, which
//! `script:` flattens.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, EnumAccess, MapAccess, SeqAccess, VariantAccess};
use serde_json::{Map, Number, Value};

/// The key of the one-key mapping a `!reference` is read into until it is resolved.
pub const MARKER: &str = "!reference";

/// How many references may lead to one another (GitLab documents ten levels).
const MAX_DEPTH: usize = 10;

/// A YAML document as a JSON value, `!reference [a, b]` read as `{"!reference": ["a", "b"]}`
/// and any other tag refused. Everything else as `serde_json::Value` reads it (the last of
/// duplicate keys wins).
pub struct Tagged(pub Value);

impl<'de> Deserialize<'de> for Tagged {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(TaggedVisitor).map(Tagged)
    }
}

struct TaggedVisitor;

impl<'de> de::Visitor<'de> for TaggedVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a YAML value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Tagged::deserialize(d).map(|t| t.0)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(Tagged(v)) = seq.next_element()? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some((Tagged(k), Tagged(v))) = map.next_entry()? {
            let key = match k {
                Value::String(s) => s,
                Value::Null => "null".to_string(),
                other => other.to_string(),
            };
            out.insert(key, v);
        }
        Ok(Value::Object(out))
    }
    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<Value, A::Error> {
        let (tag, content) = data.variant::<String>()?;
        let tag = tag.trim_start_matches('!');
        if tag != "reference" {
            return Err(de::Error::custom(format!(
                "the YAML tag !{tag} is not one GitLab knows (only !reference)"
            )));
        }
        let Tagged(value) = content.newtype_variant::<Tagged>()?;
        let mut m = Map::new();
        m.insert(MARKER.to_string(), value);
        Ok(Value::Object(m))
    }
}

/// `["a", "b"]`, as GitLab shows a reference in its errors.
fn shown(path: &[String]) -> String {
    let items: Vec<String> = path.iter().map(|p| format!("\"{p}\"")).collect();
    format!("[{}]", items.join(", "))
}

/// The path of a `!reference` marker, if `v` is one (`Err`: one that is not valid).
fn reference_path(v: &Value) -> Option<Result<Vec<String>, String>> {
    let Value::Object(m) = v else { return None };
    let target = match (m.len(), m.get(MARKER)) {
        (1, Some(t)) => t,
        _ => return None,
    };
    let invalid = || {
        Err(format!(
            "!reference {} is not valid: write !reference [job, key, ...]",
            serde_json::to_string(target).unwrap_or_default()
        ))
    };
    let Value::Array(items) = target else {
        return Some(invalid());
    };
    let path: Option<Vec<String>> = items
        .iter()
        .map(|i| i.as_str().map(str::to_string))
        .collect();
    Some(match path {
        Some(p) if !p.is_empty() => Ok(p),
        _ => invalid(),
    })
}

/// Replace every `!reference` in `top` by what it names in `top` (references in what it names
/// are resolved too). A file without any is left as it is, uncopied.
pub fn resolve(top: &mut Map<String, Value>) -> Result<(), String> {
    if !top.values().any(has_reference) {
        return Ok(());
    }
    let root = top.clone();
    for value in top.values_mut() {
        resolve_value(value, &root, &mut Vec::new())?;
    }
    Ok(())
}

fn has_reference(v: &Value) -> bool {
    match v {
        Value::Object(m) => m.contains_key(MARKER) || m.values().any(has_reference),
        Value::Array(items) => items.iter().any(has_reference),
        _ => false,
    }
}

/// Resolve the references in `v`, in place; what a reference names is looked up in `root`
/// (the file as written) and resolved in turn, `chain` holding the references on the way.
fn resolve_value(
    v: &mut Value,
    root: &Map<String, Value>,
    chain: &mut Vec<Vec<String>>,
) -> Result<(), String> {
    if let Some(path) = reference_path(v) {
        let path = path?;
        if chain.contains(&path) {
            return Err(format!(
                "!reference {} is part of a circular chain",
                shown(&path)
            ));
        }
        if chain.len() >= MAX_DEPTH {
            return Err(format!(
                "!reference {} is nested more than {MAX_DEPTH} levels deep",
                shown(&path)
            ));
        }
        let mut found = root.get(&path[0]);
        for key in &path[1..] {
            found = match found {
                Some(Value::Object(m)) => m.get(key),
                _ => None,
            };
        }
        let Some(found) = found else {
            return Err(format!("!reference {} could not be found", shown(&path)));
        };
        *v = found.clone();
        chain.push(path);
        let resolved = resolve_value(v, root, chain);
        chain.pop();
        return resolved;
    }
    match v {
        Value::Object(m) => m
            .values_mut()
            .try_for_each(|item| resolve_value(item, root, chain)),
        Value::Array(items) => items
            .iter_mut()
            .try_for_each(|item| resolve_value(item, root, chain)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn resolved(yaml: &str) -> Result<Value, String> {
        let Tagged(v) = crate::config::yaml::from_str::<Tagged>(yaml).map_err(|e| e.message)?;
        let Value::Object(mut top) = v else {
            panic!("not a mapping")
        };
        resolve(&mut top)?;
        Ok(Value::Object(top))
    }

    #[test]
    fn references_resolve_as_gitlabs_resolver_does() {
        // lists stay nested (script: flattens them), whole mappings and single values
        let v = resolved(
            "a: { b: [1, 2] }\nc: { d: { e: [3, 4] } }\nf: { g: [ !reference [a, b], 5, !reference [c, d, e]] }\n",
        )
        .unwrap();
        assert_eq!(v["f"], json!({"g": [[1, 2], 5, [3, 4]]}));
        let v = resolved("a: { b: { c: 'c', d: 'd' } }\ne: { f: { g: !reference [a, b, c], h: 'h' } }\ni: !reference [e, f]\n").unwrap();
        assert_eq!(v["i"], json!({"g": "c", "h": "h"}));
        // a value defined after the reference that uses it
        let v = resolved(
            "a: { b: !reference [c, d] }\ng: { h: { i: 'i', j: 1 } }\nc: { d: { e: !reference [g, h, j], f: 'f' } }\n",
        )
        .unwrap();
        assert_eq!(v["a"], json!({"b": {"e": 1, "f": "f"}}));
    }

    #[test]
    fn bad_references_fail_with_gitlabs_wording() {
        for (yaml, says) in [
            (
                "a: !reference [b]\nb: !reference [a]\n",
                "!reference [\"b\"] is part of a circular chain",
            ),
            (
                "a: !reference [b, c]\nb: { c: !reference [d, e, f] }\nd: { e: { f: !reference [a] } }\n",
                "!reference [\"b\", \"c\"] is part of a circular chain",
            ),
            ("a: !reference [b]\n", "!reference [\"b\"] could not be found"),
            (
                "a: [1, 2]\nb: [3, 4]\nc: !reference [a, b]\n",
                "!reference [\"a\", \"b\"] could not be found",
            ),
            ("a: !reference str\n", "!reference \"str\" is not valid"),
            ("a: !reference [1]\n", "!reference [1] is not valid"),
            ("a: !reference []\n", "!reference [] is not valid"),
            ("a: !secret x\n", "the YAML tag !secret is not one GitLab knows"),
        ] {
            let e = resolved(yaml).unwrap_err();
            assert!(e.contains(says), "{yaml}: {e}");
        }
        // eleven references leading to one another
        let mut yaml = String::from("k0: !reference [k1]\n");
        for i in 1..=11 {
            yaml.push_str(&format!("k{i}: !reference [k{}]\n", i + 1));
        }
        yaml.push_str("k12: end\n");
        let e = resolved(&yaml).unwrap_err();
        assert!(e.contains("nested more than 10 levels deep"), "{e}");
    }
}

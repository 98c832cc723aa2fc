//! What changed between two configurations, as JSON paths (`Environment.Variables.TABLE`,
//! `Layers[0]`).

use serde_json::Value;

/// One difference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// Where: members joined with `.`, list positions as `[i]`.
    pub path: String,
    /// The value before (`None`: the member was added).
    pub before: Option<Value>,
    /// The value after (`None`: the member was removed).
    pub after: Option<Value>,
}

/// Every difference between `before` and `after`, depth first, members in key order. Objects
/// are compared member by member and lists position by position; any other change is one
/// change of the whole value. Bounded by the inputs' sizes (no recursion limit is needed
/// beyond serde_json's own 128 levels, which every stored value passed).
pub fn diff(before: &Value, after: &Value) -> Vec<Change> {
    let mut out = Vec::new();
    walk(String::new(), before, after, &mut out);
    out
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn walk(path: String, before: &Value, after: &Value, out: &mut Vec<Change>) {
    match (before, after) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, va) in a {
                match b.get(k) {
                    Some(vb) => walk(join(&path, k), va, vb, out),
                    None => out.push(Change {
                        path: join(&path, k),
                        before: Some(va.clone()),
                        after: None,
                    }),
                }
            }
            for (k, vb) in b {
                if !a.contains_key(k) {
                    out.push(Change {
                        path: join(&path, k),
                        before: None,
                        after: Some(vb.clone()),
                    });
                }
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            for i in 0..a.len().max(b.len()) {
                let p = format!("{path}[{i}]");
                match (a.get(i), b.get(i)) {
                    (Some(x), Some(y)) => walk(p, x, y, out),
                    (Some(x), None) => out.push(Change {
                        path: p,
                        before: Some(x.clone()),
                        after: None,
                    }),
                    (None, Some(y)) => out.push(Change {
                        path: p,
                        before: None,
                        after: Some(y.clone()),
                    }),
                    (None, None) => {}
                }
            }
        }
        (a, b) if a != b => out.push(Change {
            path,
            before: Some(a.clone()),
            after: Some(b.clone()),
        }),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn changes_are_named_by_path() {
        let a =
            json!({"MemorySize": 128, "Environment": {"Variables": {"A": "1"}}, "Layers": ["x"]});
        let b = json!({"MemorySize": 256, "Environment": {"Variables": {"B": "1"}}, "Layers": ["x", "y"]});
        let d = diff(&a, &b);
        let paths: Vec<&str> = d.iter().map(|c| c.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "Environment.Variables.A",
                "Environment.Variables.B",
                "Layers[1]",
                "MemorySize"
            ]
        );
        assert_eq!(d[3].before, Some(json!(128)));
        assert_eq!(d[3].after, Some(json!(256)));
        assert!(diff(&a, &a).is_empty());
    }

    proptest::proptest! {
        #[test]
        fn a_value_differs_from_itself_nowhere(s in "\\PC{0,64}", n in proptest::num::i64::ANY) {
            let v = json!({"s": s, "n": n, "l": [s, n]});
            proptest::prop_assert!(diff(&v, &v).is_empty());
            proptest::prop_assert_eq!(diff(&v, &json!(null)).len(), 1);
        }
    }
}

#![allow(clippy::unwrap_used)]
use super::*;
use serde_json::json;

fn map(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => panic!("not a map"),
    }
}

fn run(content: Value, inputs: Value) -> Result<Value, String> {
    let vars: HashMap<String, String> = [("MY_VAR".to_string(), "my value".to_string())].into();
    interpolate(
        content,
        &Context {
            inputs: &map(inputs),
            variables: &vars,
        },
    )
}

#[test]
fn a_file_with_a_spec_document_has_a_header_and_its_content_is_the_last_document() {
    let s = split(vec![
        json!({"spec": {"inputs": {"a": null}}}),
        json!({"job": 1}),
    ]);
    assert_eq!(s.spec, Some(json!({"inputs": {"a": null}})));
    assert_eq!(s.content, json!({"job": 1}));
    // one document, or a first one without spec: no header, the first is the content
    let s = split(vec![json!({"job": 1})]);
    assert_eq!((s.spec, s.content), (None, json!({"job": 1})));
    let s = split(vec![json!({"a": 1}), json!({"b": 2})]);
    assert_eq!((s.spec, s.content), (None, json!({"a": 1})));
    // blank documents do not count; a fourth is ignored
    let s = split(vec![
        Value::Null,
        json!({"spec": null}),
        json!({"x": 1}),
        json!({"y": 2}),
        json!({"z": 3}),
    ]);
    assert_eq!((s.spec, s.content), (Some(Value::Null), json!({"y": 2})));
}

#[test]
fn inputs_take_defaults_and_refuse_what_the_spec_does_not_allow() {
    let spec = json!({"inputs": {
        "stage": {"default": "test"},
        "env": {"options": ["staging", "production"]},
        "n": {"type": "number", "default": 1},
        "flag": {"type": "boolean", "default": true},
        "version": {"regex": "^v\\d\\.\\d+$"},
        "list": {"type": "array", "default": ["a"]},
    }});
    let got = resolve(
        Some(&spec),
        &map(json!({"env": "staging", "n": "2", "version": "v1.3", "flag": "false"})),
    )
    .unwrap();
    assert_eq!(
        Value::Object(got),
        json!({"stage": "test", "env": "staging", "n": 2, "flag": false, "version": "v1.3", "list": ["a"]})
    );

    let cases: &[(Value, &str)] = &[
        (
            json!({"version": "v1.3"}),
            "`env` input: required value has not been provided",
        ),
        (
            json!({"env": "dev", "version": "v1.3"}),
            "`env` input: `dev` cannot be used because it is not in the list of allowed options",
        ),
        (
            json!({"env": "staging", "version": "1.3"}),
            "`version` input: provided value does not match required RegEx pattern",
        ),
        (
            json!({"env": "staging", "version": "v1.3", "n": "many"}),
            "`n` input: provided value is not a number",
        ),
        (
            json!({"env": "staging", "version": "v1.3", "flag": "yes"}),
            "`flag` input: provided value is not a boolean",
        ),
        (
            json!({"env": "staging", "version": "v1.3", "bogus": 1, "other": 2}),
            "unknown input arguments: bogus, other",
        ),
    ];
    for (given, want) in cases {
        assert_eq!(
            resolve(Some(&spec), &map(given.clone())).unwrap_err(),
            *want,
            "{given}"
        );
    }
}

#[test]
fn inputs_for_a_file_without_a_spec_are_refused_in_gitlabs_words() {
    assert_eq!(
        resolve(None, &map(json!({"a": 1}))).unwrap_err(),
        "Given inputs not defined in the `spec` section of the included configuration file"
    );
    assert_eq!(resolve(None, &Map::new()).unwrap(), Map::new());
}

#[test]
fn a_default_is_checked_too_and_at_most_three_errors_are_shown() {
    let spec = json!({"inputs": {
        "a": {"type": "number", "default": "x"},
        "b": null, "c": null, "d": null,
    }});
    assert_eq!(
        resolve(Some(&spec), &Map::new()).unwrap_err(),
        "`a` input: default value is not a number, `b` input: required value has not been provided, \
         `c` input: required value has not been provided"
    );
}

#[test]
fn a_bad_header_is_refused_with_the_key_named() {
    let e = resolve(Some(&json!({"arguments": {}})), &Map::new()).unwrap_err();
    assert_eq!(e, "header:spec config contains unknown keys: arguments");
    let e = resolve(
        Some(&json!({"inputs": {"a": {"type": "xyz"}}})),
        &Map::new(),
    )
    .unwrap_err();
    assert_eq!(e, "header:spec:inputs:a input type unknown value: xyz");
    let e = resolve(Some(&json!({"inputs": {"a": {"rules": []}}})), &Map::new()).unwrap_err();
    assert!(e.contains("not supported by pogo exec"), "{e}");
}

#[test]
fn a_whole_value_block_keeps_the_input_type_and_a_longer_string_gets_its_text() {
    let inputs = json!({"b": true, "n": 3, "l": ["x", "y"], "s": "hi", "port": 8080});
    let content = json!({
        "job": {
            "allow_failure": "$[[ inputs.b ]]",
            "parallel": "$[[inputs.n]]",
            "needs": "$[[ inputs.l ]]",
            "script": ["echo $[[ inputs.s ]] $[[ inputs.s ]]", "$[[ inputs.l ]]", "curl h:$[[ inputs.port ]] $[[ inputs.l ]] $[[ inputs.b ]]"],
        },
        "$[[ inputs.s ]]-job": {"script": "x"},
    });
    assert_eq!(
        run(content, inputs).unwrap(),
        json!({
            "job": {
                "allow_failure": true,
                "parallel": 3,
                "needs": ["x", "y"],
                "script": ["echo hi hi", "x", "y", "curl h:8080 [\"x\", \"y\"] true"],
            },
            "hi-job": {"script": "x"},
        })
    );
}

#[test]
fn blocks_that_are_not_inputs_are_refused_or_left_as_gitlab_leaves_them() {
    let inputs = json!({"a": "v"});
    assert_eq!(
        run(json!("$[[ inputs.nope ]]"), inputs.clone()).unwrap_err(),
        "unknown interpolation key: `nope`"
    );
    assert_eq!(
        run(json!("$[[ inputs ]]"), inputs.clone()).unwrap_err(),
        "invalid interpolation access pattern"
    );
    // too short for a block, matrix blocks for needs:parallel:matrix, and !reference lists
    for literal in [
        json!("$[[ a ]]"),
        json!("$[[ matrix.OS ]]"),
        json!({"!reference": ["$[[ inputs.a ]]"]}),
    ] {
        assert_eq!(run(literal.clone(), inputs.clone()).unwrap(), literal);
    }
}

#[test]
fn functions_work_as_gitlab_documents_them() {
    let inputs = json!({"t": "test $MY_VAR", "d": "0123456789", "q": "A string with ' and \"  blanks", "l": ["a"]});
    let cases = [
        ("$[[ inputs.t | expand_vars | truncate(5,8) ]]", "my value"),
        ("$[[ inputs.d | truncate(3,5) ]]", "34567"),
        ("$[[ inputs.d | truncate(30,5) ]]", ""),
        (
            "$[[ inputs.q | posix_escape ]]",
            "A\\ string\\ with\\ \\'\\ and\\ \\\"\\ \\ blanks",
        ),
        (
            "${MY_VAR} %MY_VAR% $UNKNOWN: $[[ inputs.t | expand_vars ]]",
            "${MY_VAR} %MY_VAR% $UNKNOWN: test my value",
        ),
    ];
    for (block, want) in cases {
        assert_eq!(
            run(json!(block), inputs.clone()).unwrap(),
            json!(want),
            "{block}"
        );
    }
    assert_eq!(
        run(json!("$[[ inputs.d | upcase ]]"), inputs.clone()).unwrap_err(),
        "no function matching `upcase`: check that the function name, arguments, and types are correct"
    );
    assert_eq!(
        run(json!("$[[ inputs.l | truncate(1,2) ]]"), inputs.clone()).unwrap_err(),
        "error in `truncate` function: invalid input type: truncate can only be used with string inputs"
    );
    assert_eq!(
        run(
            json!("$[[ inputs.d | posix_escape | posix_escape | posix_escape | posix_escape ]]"),
            inputs
        )
        .unwrap_err(),
        "too many functions in interpolation block"
    );
    assert_eq!(posix_escape(""), "''");
    assert_eq!(posix_escape("a\nb"), "a'\n'b");
}

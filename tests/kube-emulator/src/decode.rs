//! Decoding of request bodies into the shapes of kube-apiserver's Go structs: what its JSON
//! decoder (sigs.k8s.io/json, case-sensitive) refuses and how it words it, what it drops
//! (unknown fields) and how it normalizes times on the way back out.
//!
//! Type errors read as Go's `encoding/json` words them: `json: cannot unmarshal string into Go
//! struct field LeaseSpec.spec.leaseDurationSeconds of type int32`. Times are
//! `metav1.MicroTime` (`time.Parse` with `2006-01-02T15:04:05.000000Z07:00`) and `metav1.Time`
//! (`time.RFC3339`); their errors are Go's `time.ParseError` text.

use serde_json::{Map, Value, json};

/// A Go field type.
pub enum Ty {
    /// A string, or a Go type defined as one; the name is what errors print ("string",
    /// "types.UID", "v1.FinalizerName").
    Str(&'static str),
    Int32,
    Int64,
    Bool,
    /// `metav1.MicroTime`.
    MicroTime,
    /// `metav1.Time`.
    Time,
    /// Anything (`metav1.FieldsV1`).
    Raw,
    /// `map[string]string`.
    StrMap,
    /// A list of string-like elements, named by the element type.
    StrList(&'static str),
    Struct(&'static Struct),
    StructList(&'static Struct),
}

pub struct Struct {
    /// As reflect prints it: `v1.ObjectMeta`.
    pub go_type: &'static str,
    pub fields: &'static [(&'static str, Ty)],
}

impl Struct {
    fn name(&self) -> &'static str {
        self.go_type.rsplit('.').next().unwrap_or(self.go_type)
    }
}

impl Ty {
    fn go_type(&self) -> String {
        match self {
            Ty::Str(name) => (*name).to_owned(),
            Ty::Int32 => "int32".into(),
            Ty::Int64 => "int64".into(),
            Ty::Bool => "bool".into(),
            Ty::MicroTime => "v1.MicroTime".into(),
            Ty::Time => "v1.Time".into(),
            Ty::Raw => "v1.FieldsV1".into(),
            Ty::StrMap => "map[string]string".into(),
            Ty::StrList(elem) => format!("[]{elem}"),
            Ty::Struct(s) => s.go_type.into(),
            Ty::StructList(s) => format!("[]{}", s.go_type),
        }
    }
}

pub static OWNER_REFERENCE: Struct = Struct {
    go_type: "v1.OwnerReference",
    fields: &[
        ("apiVersion", Ty::Str("string")),
        ("kind", Ty::Str("string")),
        ("name", Ty::Str("string")),
        ("uid", Ty::Str("types.UID")),
        ("controller", Ty::Bool),
        ("blockOwnerDeletion", Ty::Bool),
    ],
};

pub static MANAGED_FIELDS_ENTRY: Struct = Struct {
    go_type: "v1.ManagedFieldsEntry",
    fields: &[
        ("manager", Ty::Str("string")),
        ("operation", Ty::Str("v1.ManagedFieldsOperationType")),
        ("apiVersion", Ty::Str("string")),
        ("time", Ty::Time),
        ("fieldsType", Ty::Str("string")),
        ("fieldsV1", Ty::Raw),
        ("subresource", Ty::Str("string")),
    ],
};

pub static OBJECT_META: Struct = Struct {
    go_type: "v1.ObjectMeta",
    fields: &[
        ("name", Ty::Str("string")),
        ("generateName", Ty::Str("string")),
        ("namespace", Ty::Str("string")),
        ("selfLink", Ty::Str("string")),
        ("uid", Ty::Str("types.UID")),
        ("resourceVersion", Ty::Str("string")),
        ("generation", Ty::Int64),
        ("creationTimestamp", Ty::Time),
        ("deletionTimestamp", Ty::Time),
        ("deletionGracePeriodSeconds", Ty::Int64),
        ("labels", Ty::StrMap),
        ("annotations", Ty::StrMap),
        ("ownerReferences", Ty::StructList(&OWNER_REFERENCE)),
        ("finalizers", Ty::StrList("string")),
        ("managedFields", Ty::StructList(&MANAGED_FIELDS_ENTRY)),
    ],
};

/// A decoding failure: Go's error text.
#[derive(Debug, PartialEq)]
pub struct DecodeError(pub String);

struct Ctx<'a> {
    /// The innermost struct being decoded.
    structure: &'a str,
    /// JSON field names from the root (Go does not record list indexes or map keys).
    path: Vec<&'a str>,
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn type_error(ctx: &Ctx<'_>, what: &str, go_type: &str) -> DecodeError {
    if ctx.structure.is_empty() && ctx.path.is_empty() {
        DecodeError(format!("json: cannot unmarshal {what} into Go value of type {go_type}"))
    } else {
        DecodeError(format!(
            "json: cannot unmarshal {what} into Go struct field {}.{} of type {go_type}",
            ctx.structure,
            ctx.path.join(".")
        ))
    }
}

/// Checks `value` against `ty`, dropping unknown fields and nulls (Go leaves them zero) and
/// normalizing times as kube-apiserver writes them back (UTC; MicroTime with 6 digits).
fn decode(value: &mut Value, ty: &Ty, ctx: &mut Ctx<'_>) -> Result<(), DecodeError> {
    if value.is_null() {
        return Ok(());
    }
    match ty {
        Ty::Str(name) => {
            if !value.is_string() {
                return Err(type_error(ctx, json_kind(value), name));
            }
        }
        Ty::Bool => {
            if !value.is_boolean() {
                return Err(type_error(ctx, json_kind(value), "bool"));
            }
        }
        Ty::Int32 | Ty::Int64 => {
            let Value::Number(n) = value else {
                return Err(type_error(ctx, json_kind(value), &ty.go_type()));
            };
            let fits = match (n.as_i64(), ty) {
                (Some(i), Ty::Int32) => i32::try_from(i).is_ok(),
                (Some(_), _) => true,
                (None, _) => false,
            };
            if !fits {
                return Err(type_error(ctx, &format!("number {n}"), &ty.go_type()));
            }
        }
        Ty::MicroTime | Ty::Time => {
            // Both types' UnmarshalJSON first decode a string, with a fresh decoder whose
            // error then gets the outer field's context.
            let Value::String(text) = value else {
                return Err(type_error(ctx, json_kind(value), "string"));
            };
            let micro = matches!(ty, Ty::MicroTime);
            let parsed = parse_go_time(text, micro).map_err(DecodeError)?;
            *value = Value::String(format_time(parsed, micro));
        }
        Ty::Raw => {}
        Ty::StrMap => {
            let Value::Object(map) = value else {
                return Err(type_error(ctx, json_kind(value), "map[string]string"));
            };
            for v in map.values_mut() {
                if v.is_null() {
                    *v = json!("");
                } else if !v.is_string() {
                    return Err(type_error(ctx, json_kind(v), "string"));
                }
            }
        }
        Ty::StrList(elem) => {
            let Value::Array(items) = value else {
                return Err(type_error(ctx, json_kind(value), &ty.go_type()));
            };
            for item in items {
                if item.is_null() {
                    *item = json!("");
                } else if !item.is_string() {
                    return Err(type_error(ctx, json_kind(item), elem));
                }
            }
        }
        Ty::Struct(shape) => {
            let Value::Object(map) = value else {
                return Err(type_error(ctx, json_kind(value), shape.go_type));
            };
            decode_struct(map, shape, ctx)?;
        }
        Ty::StructList(shape) => {
            let Value::Array(items) = value else {
                return Err(type_error(ctx, json_kind(value), &ty.go_type()));
            };
            for item in items.iter_mut() {
                match item {
                    Value::Null => *item = json!({}),
                    Value::Object(map) => decode_struct(map, shape, ctx)?,
                    other => return Err(type_error(ctx, json_kind(other), shape.go_type)),
                }
            }
        }
    }
    Ok(())
}

fn decode_struct(map: &mut Map<String, Value>, shape: &'static Struct, ctx: &mut Ctx<'_>) -> Result<(), DecodeError> {
    map.retain(|k, v| !v.is_null() && shape.fields.iter().any(|(name, _)| name == k));
    let outer = ctx.structure;
    for (key, ty) in shape.fields {
        if let Some(v) = map.get_mut(*key) {
            ctx.structure = shape.name();
            ctx.path.push(key);
            let result = decode(v, ty, ctx);
            ctx.path.pop();
            ctx.structure = outer;
            result?;
        }
    }
    Ok(())
}

/// Decodes a whole object of a built-in kind (apiVersion and kind are kept as they are).
pub fn decode_object(object: &mut Value, shape: &'static Struct) -> Result<(), DecodeError> {
    let Value::Object(map) = object else {
        return Err(DecodeError(format!(
            "json: cannot unmarshal {} into Go value of type {}",
            json_kind(object),
            shape.go_type
        )));
    };
    let api_version = map.remove("apiVersion");
    let kind = map.remove("kind");
    let mut ctx = Ctx { structure: "", path: Vec::new() };
    let result = decode_struct(map, shape, &mut ctx);
    if let Some(v) = kind {
        map.insert("kind".into(), v);
    }
    if let Some(v) = api_version {
        map.insert("apiVersion".into(), v);
    }
    result
}

/// Fields of `value` that the Go type `ty` has no place for, as strict decoding names them
/// (`spec.foo`, `metadata.ownerReferences[0].bar`); `path` is the prefix.
fn unknown_in(value: &Value, ty: &Ty, path: &str, out: &mut Vec<String>) {
    let join = |key: &str| if path.is_empty() { key.to_owned() } else { format!("{path}.{key}") };
    match (ty, value) {
        (Ty::Struct(shape), Value::Object(map)) => {
            for (key, child) in map {
                match shape.fields.iter().find(|(name, _)| name == key) {
                    Some((_, ty)) => unknown_in(child, ty, &join(key), out),
                    None => out.push(join(key)),
                }
            }
        }
        (Ty::StructList(shape), Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                unknown_in(item, &Ty::Struct(shape), &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

/// Fields of a built-in object that its Go struct does not have (apiVersion and kind aside).
pub fn unknown_fields(object: &Value, shape: &'static Struct) -> Vec<String> {
    let mut out = Vec::new();
    if let Value::Object(map) = object {
        let mut rest = map.clone();
        rest.remove("apiVersion");
        rest.remove("kind");
        unknown_in(&Value::Object(rest), &Ty::Struct(shape), "", &mut out);
    }
    out
}

/// Fields of `metadata` that `ObjectMeta` does not have, as `metadata.<field>`.
pub fn unknown_metadata_fields(metadata: &Value) -> Vec<String> {
    let mut out = Vec::new();
    unknown_in(metadata, &Ty::Struct(&OBJECT_META), "metadata", &mut out);
    out
}

/// Decodes `metadata` on its own, as the custom-resource handler does
/// (`schemaobjectmeta.GetObjectMeta`: field paths relative to metadata).
pub fn decode_metadata(metadata: &mut Value) -> Result<(), DecodeError> {
    let mut ctx = Ctx { structure: "", path: Vec::new() };
    match metadata {
        Value::Null => Ok(()),
        Value::Object(map) => decode_struct(map, &OBJECT_META, &mut ctx),
        other => Err(type_error(&ctx, json_kind(other), "v1.ObjectMeta")),
    }
}

/// A parsed time: civil fields and the UTC offset in seconds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GoTime {
    year: i32,
    month: i8,
    day: i8,
    hour: i8,
    minute: i8,
    second: i8,
    nanos: i32,
    offset: i32,
}

/// Go's `time` package quoting in parse errors: bytes outside printable ASCII as `\xNN`.
fn time_quote(text: &str) -> String {
    let mut out = String::from("\"");
    for b in text.bytes() {
        if !(0x20..0x80).contains(&b) {
            out.push_str(&format!("\\x{b:02x}"));
        } else {
            if b == b'"' || b == b'\\' {
                out.push('\\');
            }
            out.push(b as char);
        }
    }
    out.push('"');
    out
}

pub const RFC3339_MICRO: &str = "2006-01-02T15:04:05.000000Z07:00";
pub const RFC3339: &str = "2006-01-02T15:04:05Z07:00";

/// `time.Parse(layout, text)` for the two layouts Kubernetes uses, with Go's error texts.
pub fn parse_go_time(text: &str, micro: bool) -> Result<GoTime, String> {
    let layout = if micro { RFC3339_MICRO } else { RFC3339 };
    let cannot = |value: &str, elem: &str| {
        format!(
            "parsing time {} as {}: cannot parse {} as {}",
            time_quote(text),
            time_quote(layout),
            time_quote(value),
            time_quote(elem)
        )
    };
    let out_of_range = |what: &str| format!("parsing time {}: {what} out of range", time_quote(text));
    let digit = |s: &[u8], i: usize| s.get(i).is_some_and(u8::is_ascii_digit);
    // getnum: one or two digits (exactly two when fixed).
    let getnum = |s: &[u8], fixed: bool| -> Option<(i32, usize)> {
        if !digit(s, 0) {
            return None;
        }
        if !digit(s, 1) {
            return if fixed { None } else { Some(((s[0] - b'0') as i32, 1)) };
        }
        Some((((s[0] - b'0') * 10 + (s[1] - b'0')) as i32, 2))
    };
    let mut rest = text.as_bytes();
    let str_of = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let mut t = GoTime { year: 0, month: 0, day: 0, hour: 0, minute: 0, second: 0, nanos: 0, offset: 0 };

    // "2006"
    if rest.len() < 4 || !digit(rest, 0) || !rest[..4].iter().all(u8::is_ascii_digit) {
        return Err(cannot(&str_of(rest), "2006"));
    }
    t.year = std::str::from_utf8(&rest[..4]).unwrap().parse().unwrap();
    rest = &rest[4..];
    let literal = |rest: &mut &[u8], lit: u8| -> Result<(), String> {
        if rest.first() == Some(&lit) {
            *rest = &rest[1..];
            Ok(())
        } else {
            Err(cannot(&str_of(rest), &(lit as char).to_string()))
        }
    };
    literal(&mut rest, b'-')?;
    // "01"
    let (month, n) = getnum(rest, true).ok_or_else(|| cannot(&str_of(rest), "01"))?;
    if !(1..=12).contains(&month) {
        return Err(out_of_range("month"));
    }
    t.month = month as i8;
    rest = &rest[n..];
    literal(&mut rest, b'-')?;
    // "02"
    let (day, n) = getnum(rest, true).ok_or_else(|| cannot(&str_of(rest), "02"))?;
    t.day = day as i8;
    rest = &rest[n..];
    literal(&mut rest, b'T')?;
    // "15"
    let (hour, n) = getnum(rest, false).ok_or_else(|| cannot(&str_of(rest), "15"))?;
    if hour >= 24 {
        return Err(out_of_range("hour"));
    }
    t.hour = hour as i8;
    rest = &rest[n..];
    literal(&mut rest, b':')?;
    // "04"
    let (minute, n) = getnum(rest, true).ok_or_else(|| cannot(&str_of(rest), "04"))?;
    if minute >= 60 {
        return Err(out_of_range("minute"));
    }
    t.minute = minute as i8;
    rest = &rest[n..];
    literal(&mut rest, b':')?;
    // "05"
    let (second, n) = getnum(rest, true).ok_or_else(|| cannot(&str_of(rest), "05"))?;
    if second >= 60 {
        return Err(out_of_range("second"));
    }
    t.second = second as i8;
    rest = &rest[n..];
    let fraction = |digits: &[u8]| -> Option<i32> {
        // atoi accepts a sign; a negative fraction is then out of range.
        let text = std::str::from_utf8(digits).ok()?;
        let value: i64 = text.parse().ok()?;
        Some(value as i32)
    };
    if micro {
        // ".000000": exactly a period or comma and six digits.
        if rest.len() < 7 || !matches!(rest[0], b'.' | b',') {
            return Err(cannot(&str_of(rest), ".000000"));
        }
        let ns = fraction(&rest[1..7]).ok_or_else(|| cannot(&str_of(rest), ".000000"))?;
        if ns < 0 {
            return Err(out_of_range("fractional second"));
        }
        t.nanos = ns * 1000;
        rest = &rest[7..];
    } else if rest.len() >= 2 && matches!(rest[0], b'.' | b',') && digit(rest, 1) {
        // RFC3339 without a fraction in the layout still accepts one after the seconds.
        let mut n = 2;
        while digit(rest, n) {
            n += 1;
        }
        let used = n.min(10);
        let mut ns = fraction(&rest[1..used]).unwrap_or(0);
        for _ in 0..(10 - used) {
            ns *= 10;
        }
        t.nanos = ns;
        rest = &rest[n..];
    }
    // "Z07:00"
    if rest.first() == Some(&b'Z') {
        rest = &rest[1..];
    } else {
        let bad = || cannot(&str_of(rest), "Z07:00");
        if rest.len() < 6 || rest[3] != b':' {
            return Err(bad());
        }
        let (hours, _) = getnum(&rest[1..3], true).ok_or_else(bad)?;
        let (minutes, _) = getnum(&rest[4..6], true).ok_or_else(bad)?;
        if hours > 24 {
            return Err(out_of_range("time zone offset hour"));
        }
        if minutes > 60 {
            return Err(out_of_range("time zone offset minute"));
        }
        let offset = (hours * 60 + minutes) * 60;
        t.offset = match rest[0] {
            b'+' => offset,
            b'-' => -offset,
            _ => return Err(bad()),
        };
        rest = &rest[6..];
    }
    if !rest.is_empty() {
        let extra = str_of(rest);
        return Err(format!("parsing time {}: extra text: {}", time_quote(text), time_quote(&extra)));
    }
    let leap = (t.year % 4 == 0 && t.year % 100 != 0) || t.year % 400 == 0;
    let days = match t.month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    if t.day < 1 || t.day > days {
        return Err(out_of_range("day"));
    }
    Ok(t)
}

/// How kube-apiserver writes a time back: UTC, `RFC3339Micro` or `RFC3339` (seconds).
fn format_time(t: GoTime, micro: bool) -> String {
    let civil = jiff::civil::DateTime::new(t.year as i16, t.month, t.day, t.hour, t.minute, t.second, t.nanos);
    let utc = civil
        .ok()
        .and_then(|dt| jiff::tz::Offset::from_seconds(t.offset).ok().and_then(|o| o.to_timestamp(dt).ok()))
        .map(|ts| ts.to_zoned(jiff::tz::TimeZone::UTC).datetime());
    match utc {
        Some(dt) if micro => dt.strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string(),
        Some(dt) => dt.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
        // Outside what jiff represents (year 0 after an offset, say): keep the text's fields.
        None => format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}{}Z",
            t.year,
            t.month,
            t.day,
            t.hour,
            t.minute,
            t.second,
            if micro { format!(".{:06}", t.nanos / 1000) } else { String::new() }
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn micro_time_needs_six_fraction_digits_like_go() {
        assert!(parse_go_time("2026-01-02T03:04:05.123456Z", true).is_ok());
        assert_eq!(
            parse_go_time("2026-01-02T03:04:05Z", true).unwrap_err(),
            "parsing time \"2026-01-02T03:04:05Z\" as \"2006-01-02T15:04:05.000000Z07:00\": cannot parse \"Z\" as \".000000\""
        );
        assert_eq!(
            parse_go_time("2026-01-02T03:04:05.123Z", true).unwrap_err(),
            "parsing time \"2026-01-02T03:04:05.123Z\" as \"2006-01-02T15:04:05.000000Z07:00\": cannot parse \".123Z\" as \".000000\""
        );
        assert_eq!(
            parse_go_time("2026-13-02T03:04:05.123456Z", true).unwrap_err(),
            "parsing time \"2026-13-02T03:04:05.123456Z\": month out of range"
        );
        assert_eq!(
            parse_go_time("2026-02-30T03:04:05.123456Z", true).unwrap_err(),
            "parsing time \"2026-02-30T03:04:05.123456Z\": day out of range"
        );
        assert_eq!(
            parse_go_time("2026-01-02T03:04:05.123456Zjunk", true).unwrap_err(),
            "parsing time \"2026-01-02T03:04:05.123456Zjunk\": extra text: \"junk\""
        );
        assert_eq!(
            parse_go_time("yesterday", true).unwrap_err(),
            "parsing time \"yesterday\" as \"2006-01-02T15:04:05.000000Z07:00\": cannot parse \"yesterday\" as \"2006\""
        );
    }

    #[test]
    fn times_are_written_back_in_utc() {
        let t = parse_go_time("2026-01-02T03:04:05.123456+01:00", true).unwrap();
        assert_eq!(format_time(t, true), "2026-01-02T02:04:05.123456Z");
        let t = parse_go_time("2026-01-02T03:04:05.5Z", false).unwrap();
        assert_eq!(format_time(t, false), "2026-01-02T03:04:05Z");
    }

    #[test]
    fn type_errors_name_the_struct_and_field_path() {
        static SPEC: Struct = Struct { go_type: "v1.LeaseSpec", fields: &[("leaseDurationSeconds", Ty::Int32)] };
        static LEASE: Struct = Struct {
            go_type: "v1.Lease",
            fields: &[("metadata", Ty::Struct(&OBJECT_META)), ("spec", Ty::Struct(&SPEC))],
        };
        let mut lease = json!({"apiVersion": "x", "kind": "Lease", "spec": {"leaseDurationSeconds": "15", "bogus": 1}});
        assert_eq!(
            decode_object(&mut lease, &LEASE).unwrap_err().0,
            "json: cannot unmarshal string into Go struct field LeaseSpec.spec.leaseDurationSeconds of type int32"
        );
        let mut lease = json!({"spec": {"leaseDurationSeconds": 3_000_000_000i64, "bogus": 1}});
        assert_eq!(
            decode_object(&mut lease, &LEASE).unwrap_err().0,
            "json: cannot unmarshal number 3000000000 into Go struct field LeaseSpec.spec.leaseDurationSeconds of type int32"
        );
        let mut lease = json!({"metadata": {"labels": {"a": 1}}});
        assert_eq!(
            decode_object(&mut lease, &LEASE).unwrap_err().0,
            "json: cannot unmarshal number into Go struct field ObjectMeta.metadata.labels of type string"
        );
        let mut lease = json!({"spec": {"leaseDurationSeconds": 5, "bogus": 1}, "extra": true});
        decode_object(&mut lease, &LEASE).unwrap();
        assert_eq!(lease, json!({"spec": {"leaseDurationSeconds": 5}}), "unknown fields are dropped");
    }
}

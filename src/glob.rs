//! Redis-style glob patterns over bytes: `*`, `?`, `[abc]`, `[^a-z]` and `\x`.

/// True when `text` matches `pattern` as Redis's `KEYS`/`SCAN MATCH` would.
pub fn matches(pattern: &[u8], text: &[u8]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some((b'*', rest)) => (0..=text.len()).any(|skip| matches(rest, &text[skip..])),
        Some((b'?', rest)) => !text.is_empty() && matches(rest, &text[1..]),
        Some((b'[', rest)) => match (class(rest), text.split_first()) {
            (Some((matched, after)), Some((&first, tail))) => matched(first) && matches(after, tail),
            (None, Some((&first, tail))) => first == b'[' && matches(rest, tail),
            (_, None) => false,
        },
        Some((b'\\', [escaped, rest @ ..])) => text.first() == Some(escaped) && matches(rest, &text[1..]),
        Some((&literal, rest)) => text.first() == Some(&literal) && matches(rest, &text[1..]),
    }
}

/// Parses a `[...]` class (after the `[`): a membership test and the rest of the pattern.
fn class(pattern: &[u8]) -> Option<(impl Fn(u8) -> bool + '_, &[u8])> {
    let (negated, body) = match pattern.split_first() {
        Some((b'^', body)) => (true, body),
        _ => (false, pattern),
    };
    let close = body.iter().position(|&byte| byte == b']')?;
    let (members, rest) = (&body[..close], &body[close + 1..]);
    let test = move |byte: u8| {
        let mut index = 0;
        let mut found = false;
        while index < members.len() {
            if members[index] == b'\\' && index + 1 < members.len() {
                found |= members[index + 1] == byte;
                index += 2;
            } else if index + 2 < members.len() && members[index + 1] == b'-' {
                let (low, high) = (members[index].min(members[index + 2]), members[index].max(members[index + 2]));
                found |= (low..=high).contains(&byte);
                index += 3;
            } else {
                found |= members[index] == byte;
                index += 1;
            }
        }
        found != negated
    };
    Some((test, rest))
}

/// Escapes `*?[]\` so `literal` matches only itself.
pub fn escape(literal: &[u8]) -> Vec<u8> {
    let mut escaped = Vec::with_capacity(literal.len());
    for &byte in literal {
        if matches!(byte, b'*' | b'?' | b'[' | b']' | b'\\') {
            escaped.push(b'\\');
        }
        escaped.push(byte);
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_classes_and_escapes() {
        let cases: &[(&str, &str, bool)] = &[
            ("*", "", true),
            ("*", "anything", true),
            ("user:*", "user:42", true),
            ("user:*", "users:42", false),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("h[ae]llo", "hello", true),
            ("h[ae]llo", "hillo", false),
            ("h[^e]llo", "hallo", true),
            ("h[^e]llo", "hello", false),
            ("h[a-c]llo", "hbllo", true),
            ("h[a-c]llo", "hdllo", false),
            ("a\\*b", "a*b", true),
            ("a\\*b", "axb", false),
            ("*:*:x", "a:b:x", true),
            ("[", "[", true),
        ];
        for (pattern, text, expected) in cases {
            assert_eq!(matches(pattern.as_bytes(), text.as_bytes()), *expected, "{pattern} ~ {text}");
        }
    }

    #[test]
    fn an_escaped_literal_matches_only_itself() {
        let literal = b"app[1]*?\\:";
        assert!(matches(&escape(literal), literal));
        assert!(!matches(&escape(literal), b"app1x?\\:"));
    }
}

//! Shell-style file name patterns with the exact semantics of Python's `fnmatch.fnmatch` on
//! POSIX (case-sensitive, no separator normalisation): `*`, `?`, `[seq]`, `[!seq]`, ranges,
//! and the same treatment of malformed classes as `fnmatch.translate` (an unclosed `[` is a
//! literal, an empty range such as `[z-a]` never matches, `[!z-a]` matches any character).

/// One element of a compiled pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    /// Any run of characters, possibly empty.
    Star,
    /// Exactly one character, whatever it is.
    Any,
    /// One given character.
    Literal(char),
    /// One character in (or, when `negated`, not in) the inclusive ranges.
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
    /// Never matches (an empty class).
    Never,
}

impl Token {
    fn matches(&self, c: char) -> bool {
        match self {
            Token::Star | Token::Any => true,
            Token::Literal(l) => *l == c,
            Token::Class { negated, ranges } => {
                ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi) != *negated
            }
            Token::Never => false,
        }
    }
}

/// A compiled shell pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    tokens: Vec<Token>,
}

impl Pattern {
    /// Compile `pattern` as `fnmatch.translate` does.
    pub fn new(pattern: &str) -> Self {
        let pat: Vec<char> = pattern.chars().collect();
        let mut tokens = Vec::new();
        let n = pat.len();
        let mut i = 0;
        while i < n {
            let c = pat[i];
            i += 1;
            match c {
                '*' => {
                    if tokens.last() != Some(&Token::Star) {
                        tokens.push(Token::Star);
                    }
                }
                '?' => tokens.push(Token::Any),
                '[' => {
                    let mut j = i;
                    if j < n && pat[j] == '!' {
                        j += 1;
                    }
                    if j < n && pat[j] == ']' {
                        j += 1;
                    }
                    while j < n && pat[j] != ']' {
                        j += 1;
                    }
                    if j >= n {
                        tokens.push(Token::Literal('['));
                    } else {
                        tokens.push(class_token(&pat[i..j]));
                        i = j + 1;
                    }
                }
                other => tokens.push(Token::Literal(other)),
            }
        }
        Pattern { tokens }
    }

    /// Whether the whole of `name` matches.
    pub fn matches(&self, name: &str) -> bool {
        let name: Vec<char> = name.chars().collect();
        let toks = &self.tokens;
        let (mut t, mut s) = (0usize, 0usize);
        // Position after the last star and the name position it was tried at.
        let mut backtrack: Option<(usize, usize)> = None;
        loop {
            if t < toks.len() {
                if toks[t] == Token::Star {
                    backtrack = Some((t + 1, s));
                    t += 1;
                    continue;
                }
                if s < name.len() && toks[t].matches(name[s]) {
                    t += 1;
                    s += 1;
                    continue;
                }
            } else if s == name.len() {
                return true;
            }
            match backtrack {
                Some((bt, bs)) if bs < name.len() => {
                    backtrack = Some((bt, bs + 1));
                    t = bt;
                    s = bs + 1;
                }
                _ => return false,
            }
        }
    }
}

/// Build the token of a `[...]` class whose inside (with its leading `!`) is `stuff`, following
/// `fnmatch.translate`'s splitting on hyphens and its removal of empty ranges.
fn class_token(stuff: &[char]) -> Token {
    let negated = stuff.first() == Some(&'!');
    let chunks: Vec<Vec<char>> = if stuff.contains(&'-') {
        split_chunks(stuff)
    } else {
        vec![stuff.to_vec()]
    };
    // Chunks joined by range hyphens: the last char of one chunk and the first of the next
    // bound a range; every other char is a literal.
    let mut ranges = Vec::new();
    let mut flat = 0usize;
    for (k, chunk) in chunks.iter().enumerate() {
        for (idx, &c) in chunk.iter().enumerate() {
            let at_start = k == 0 && idx == 0 && negated;
            let range_start = k + 1 < chunks.len() && idx + 1 == chunk.len();
            let range_end = k > 0 && idx == 0;
            flat += 1;
            if at_start || range_end {
                continue;
            }
            if range_start {
                let hi = chunks[k + 1].first().copied().unwrap_or(c);
                ranges.push((c, hi));
            } else {
                ranges.push((c, c));
            }
        }
    }
    if flat == 0 {
        return Token::Never;
    }
    if negated && flat == 1 {
        return Token::Any;
    }
    Token::Class { negated, ranges }
}

fn split_chunks(stuff: &[char]) -> Vec<Vec<char>> {
    let len = stuff.len();
    let mut chunks: Vec<Vec<char>> = Vec::new();
    let mut start = 0usize;
    let mut search = if stuff.first() == Some(&'!') { 2 } else { 1 };
    while let Some(pos) = (search..len).find(|&p| stuff[p] == '-') {
        chunks.push(stuff[start..pos].to_vec());
        start = pos + 1;
        search = pos + 3;
    }
    let last = stuff[start.min(len)..].to_vec();
    if last.is_empty() {
        if let Some(prev) = chunks.last_mut() {
            prev.push('-');
        }
    } else {
        chunks.push(last);
    }
    // Remove empty ranges (invalid in a regular expression) by merging their neighbours.
    let mut k = chunks.len();
    while k > 1 {
        k -= 1;
        let (Some(&a), Some(&b)) = (chunks[k - 1].last(), chunks[k].first()) else {
            continue;
        };
        if a > b {
            let tail: Vec<char> = chunks[k][1..].to_vec();
            chunks[k - 1].pop();
            chunks[k - 1].extend(tail);
            chunks.remove(k);
        }
    }
    chunks
}

/// The stdlib's `_normalize_filename` on POSIX: a trailing `.pyc` becomes `.py`.
pub fn normalize_filename(filename: &str) -> &str {
    match filename.strip_suffix(".pyc") {
        Some(stem) => &filename[..stem.len() + 3],
        None => filename,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(name: &str, pat: &str) -> bool {
        Pattern::new(pat).matches(name)
    }

    #[test]
    fn jokers_like_the_stdlib() {
        assert!(!m("abc", ""));
        assert!(!m("", "abc"));
        assert!(m("", ""));
        assert!(m("", "*"));
        assert!(m("abc", "a*"));
        assert!(m("abc", "abc*"));
        assert!(!m("abc", "b*"));
        assert!(m("abcdcx", "a*cx"));
        assert!(!m("abcdce", "a*cx"));
        assert!(m("abcbdefeg", "a*bd*eg"));
        assert!(!m("abcbdefef", "a*bd*eg"));
        assert!(m("a\nb", "a*b"));
        assert!(m("abc", "a?c"));
    }

    #[test]
    fn classes_like_the_stdlib() {
        assert!(m("b", "[abc]"));
        assert!(!m("d", "[abc]"));
        assert!(m("d", "[!abc]"));
        assert!(m("m", "[a-z]"));
        assert!(!m("m", "[z-a]"));
        assert!(m("m", "[!z-a]"));
        assert!(m("[", "["));
        assert!(m("[a", "[a"));
        assert!(m("]", "[]]"));
        assert!(m("-", "[a-]"));
        assert!(m("-", "[!a]"));
        assert!(!m("-", "[!-a]"));
        assert!(m("c", "[a-b-c]"));
        assert!(m("-", "[a-b-c]"));
        assert!(!m("x", "[a-b-c]"));
        assert!(m("\\", "[\\]"));
    }

    #[test]
    fn pyc_normalisation() {
        assert_eq!(normalize_filename("a.pyc"), "a.py");
        assert_eq!(normalize_filename("a.py"), "a.py");
        assert_eq!(normalize_filename("a.pyo"), "a.pyo");
    }
}

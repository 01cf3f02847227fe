//! Plain-text tables and JSON for list and show commands.

use std::borrow::Cow;

use serde::Serialize;

/// `text` with every control character but tab and newline shown escaped
/// (`\u{1b}`), for text an app controls (its log lines, its build output,
/// failure reasons quoting them): an escape sequence must not reach the
/// terminal of whoever reads it, where it could rewrite the screen, the
/// window title or the clipboard.
pub fn printable(text: &str) -> Cow<'_, str> {
    let unsafe_char = |c: char| c.is_control() && c != '\t' && c != '\n';
    if !text.chars().any(unsafe_char) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if unsafe_char(c) {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Prints `value` as pretty JSON on stdout.
pub fn json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// Prints rows under a header, columns padded to their widest cell.
pub fn table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<width$}  ", width = widths[i]));
            }
        }
        println!("{}", out.trim_end());
    };
    line(header.to_vec());
    for row in rows {
        let cells: Vec<Cow<'_, str>> = row.iter().map(|c| printable(c)).collect();
        line(cells.iter().map(|c| c.as_ref()).collect());
    }
}

/// Prints `items` as JSON with `--json`, else as a table with one row each.
pub fn list<T: Serialize>(
    json_wanted: bool,
    items: &[T],
    header: &[&str],
    row: impl Fn(&T) -> Vec<String>,
) -> anyhow::Result<()> {
    if json_wanted {
        return json(&items);
    }
    let rows: Vec<Vec<String>> = items.iter().map(row).collect();
    table(header, &rows);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_sequences_are_shown_not_sent() {
        assert_eq!(printable("plain\ttext\n"), "plain\ttext\n");
        assert_eq!(
            printable("\x1b]52;c;cm0gLXJmIH4=\x07title\x1b[2J"),
            "\\u{1b}]52;c;cm0gLXJmIH4=\\u{7}title\\u{1b}[2J"
        );
        assert_eq!(printable("\r\u{9b}"), "\\u{d}\\u{9b}");
    }
}

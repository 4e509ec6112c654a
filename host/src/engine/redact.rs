//! Secrets never leave in what a job writes back: every text of the
//! report (log records, progress, stdout and stderr tails, the failure
//! message, the output, request records, follow-ups' inputs) has each
//! secret value it was given replaced by `[REDACTED]`, also where a bound
//! cut the value at the text's start or end.

/// What a secret is replaced by.
pub const MARK: &str = "[REDACTED]";

/// The shortest piece of a secret, cut at a text's edge, still redacted.
const EDGE_MIN: usize = 4;

/// Replaces the secrets in texts.
pub struct Redactor {
    /// Each secret, and its form inside a JSON string.
    secrets: Vec<(String, String)>,
}

impl Redactor {
    /// A redactor of `secrets` (empty ones ignored).
    pub fn new<'a>(secrets: impl IntoIterator<Item = &'a String>) -> Redactor {
        let mut secrets: Vec<(String, String)> = secrets
            .into_iter()
            .filter(|s| !s.is_empty())
            .map(|s| {
                let json = serde_json::to_string(s).unwrap_or_default();
                let json = json[1..json.len().saturating_sub(1).max(1)].to_owned();
                (s.clone(), json)
            })
            .collect();
        // Longest first: a secret that contains another is replaced whole.
        secrets.sort_by_key(|(s, _)| std::cmp::Reverse(s.len()));
        Redactor { secrets }
    }

    /// Whether there is nothing to redact.
    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty()
    }

    /// `text` without the secrets.
    pub fn text(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for (secret, json) in &self.secrets {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), MARK);
            }
            if json != secret && out.contains(json.as_str()) {
                out = out.replace(json.as_str(), MARK);
            }
            out = cut_edges(out, secret);
        }
        out
    }

    /// Redacts `text` in place.
    pub fn apply(&self, text: &mut String) {
        if !self.is_empty() {
            *text = self.text(text);
        }
    }
}

/// Redacts a piece of `secret` that a cut left at the start (its end) or
/// at the end (its start) of `text`.
fn cut_edges(mut text: String, secret: &str) -> String {
    let max = secret.len().saturating_sub(1);
    if let Some(n) = (EDGE_MIN..=max).rev().find(|&n| {
        secret.is_char_boundary(secret.len() - n) && text.starts_with(&secret[secret.len() - n..])
    }) {
        text.replace_range(..n, MARK);
    }
    if let Some(n) = (EDGE_MIN..=max)
        .rev()
        .find(|&n| secret.is_char_boundary(n) && text.ends_with(&secret[..n]))
    {
        let start = text.len() - n;
        text.replace_range(start.., MARK);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_escaped_and_cut_secrets_are_redacted() {
        let secrets = ["sk_live_0123456789".to_owned(), "pa\"ss\\word!".to_owned()];
        let r = Redactor::new(&secrets);
        assert_eq!(r.text("key=sk_live_0123456789;"), "key=[REDACTED];");
        assert_eq!(
            r.text(r#"{"p":"pa\"ss\\word!"}"#),
            r#"{"p":"[REDACTED]"}"#,
            "as JSON writes it"
        );
        assert_eq!(
            r.text("456789 and more"),
            "[REDACTED] and more",
            "a tail's cut start"
        );
        assert_eq!(
            r.text("log: sk_live_01"),
            "log: [REDACTED]",
            "a truncated end"
        );
        assert_eq!(
            r.text("sk_ and 789"),
            "sk_ and 789",
            "pieces shorter than 4 stay"
        );
        assert!(Redactor::new(&[]).is_empty());
    }
}

//! The little XML the query protocol needs: escaping and a writer for response documents.

/// XML namespace of every SNS response (the service model's `xmlNamespace`).
pub const NAMESPACE: &str = "http://sns.amazonaws.com/doc/2010-03-31/";

/// Escapes text for an XML element or attribute. Carriage returns are written as a
/// character reference so that a parser does not normalise them away.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\r' => out.push_str("&#xD;"),
            c => out.push(c),
        }
    }
    out
}

/// True if XML 1.0 can carry `c` at all (escaped or not).
pub fn is_xml_char(c: char) -> bool {
    matches!(c,
        '\u{9}' | '\u{A}' | '\u{D}'
        | '\u{20}'..='\u{D7FF}'
        | '\u{E000}'..='\u{FFFD}'
        | '\u{10000}'..='\u{10FFFF}')
}

/// Builds one `<ActionResponse>` document.
pub(crate) struct Response {
    action: &'static str,
    out: String,
}

impl Response {
    /// Opens `<{action}Response>`; with `result`, also `<{action}Result>`.
    pub(crate) fn new(action: &'static str, result: bool) -> Response {
        let mut out = format!("<{action}Response xmlns=\"{NAMESPACE}\">");
        if result {
            out.push_str(&format!("<{action}Result>"));
        }
        Response { action, out }
    }

    pub(crate) fn open(&mut self, tag: &str) {
        self.out.push('<');
        self.out.push_str(tag);
        self.out.push('>');
    }

    pub(crate) fn close(&mut self, tag: &str) {
        self.out.push_str("</");
        self.out.push_str(tag);
        self.out.push('>');
    }

    pub(crate) fn leaf(&mut self, tag: &str, text: &str) {
        self.open(tag);
        self.out.push_str(&escape(text));
        self.close(tag);
    }

    /// `<entry><key>k</key><value>v</value></entry>` for each pair, inside `tag`.
    pub(crate) fn entries(&mut self, tag: &str, pairs: &[(String, String)]) {
        self.open(tag);
        for (k, v) in pairs {
            self.open("entry");
            self.leaf("key", k);
            self.leaf("value", v);
            self.close("entry");
        }
        self.close(tag);
    }

    /// Closes the result (when `result`), writes the request id and closes the document.
    pub(crate) fn finish(mut self, result: bool, request_id: &str) -> String {
        if result {
            let close = format!("</{}Result>", self.action);
            self.out.push_str(&close);
        }
        self.out.push_str("<ResponseMetadata>");
        self.leaf("RequestId", request_id);
        self.out.push_str("</ResponseMetadata>");
        let close = format!("</{}Response>", self.action);
        self.out.push_str(&close);
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(escape("a<b>&\"c'\r"), "a&lt;b&gt;&amp;&quot;c&apos;&#xD;");
    }

    #[test]
    fn xml_chars() {
        assert!(is_xml_char('a'));
        assert!(is_xml_char('\n'));
        assert!(!is_xml_char('\u{0}'));
        assert!(!is_xml_char('\u{1F}'));
        assert!(!is_xml_char('\u{FFFE}'));
    }

    #[test]
    fn response_shape() {
        let mut r = Response::new("CreateTopic", true);
        r.leaf("TopicArn", "arn:aws:sns:us-east-1:123456789012:t");
        let xml = r.finish(true, "rid");
        assert_eq!(
            xml,
            format!(
                "<CreateTopicResponse xmlns=\"{NAMESPACE}\"><CreateTopicResult><TopicArn>\
                 arn:aws:sns:us-east-1:123456789012:t</TopicArn></CreateTopicResult>\
                 <ResponseMetadata><RequestId>rid</RequestId></ResponseMetadata>\
                 </CreateTopicResponse>"
            )
        );
    }
}

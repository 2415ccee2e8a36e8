//! The HTML pages, written out by hand: a layout and one function per page.
//! Every value from outside goes through [`escape`].

use axum::response::Html;

use crate::i18n::{Lang, Texts};

/// What a page in progress needs: the language.
pub struct Page {
    lang: Lang,
}

impl Page {
    pub fn new(lang: Lang) -> Self {
        Self { lang }
    }

    fn t(&self) -> &'static Texts {
        self.lang.texts()
    }

    fn layout(&self, body: &str) -> Html<String> {
        let t = self.t();
        Html(format!(
            r#"<!doctype html>
<html lang="{lang}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>{STYLE}</style>
</head>
<body>
<header><span class="logo">◆</span> {title}</header>
<main>
{body}
</main>
</body>
</html>
"#,
            lang = self.lang.code(),
            title = t.title,
        ))
    }

    fn lost_phone(&self) -> String {
        let t = self.t();
        format!(
            r#"<aside id="lost-phone"><h2>{}</h2><p>{}</p></aside>"#,
            t.lost_phone_title, t.lost_phone_body
        )
    }

    /// The sign-in form, with an error or notice above it.
    pub fn sign_in(&self, notice: Option<&str>) -> Html<String> {
        let t = self.t();
        let notice = notice.map_or(String::new(), |text| {
            format!(r#"<p class="error" id="notice">{}</p>"#, escape(text))
        });
        self.layout(&format!(
            r#"<h1>{heading}</h1>
{notice}
<form method="post" action="/sign-in">
<label>{email}<input name="email" type="email" autocomplete="username" required></label>
<label>{password}<input name="password" type="password" autocomplete="current-password" required></label>
<button type="submit">{button}</button>
</form>
<p class="hint">{hint}</p>
{lost}"#,
            heading = t.sign_in_heading,
            email = t.email,
            password = t.password,
            button = t.sign_in_button,
            hint = t.demo_users_hint,
            lost = self.lost_phone(),
        ))
    }

    /// The QR code with the manual code and URL, and the live status.
    pub fn enroll(&self, enrollment_id: &str, manual_code: &str, server_url: &str) -> Html<String> {
        let t = self.t();
        self.layout(&format!(
            r#"<h1>{heading}</h1>
<p>{intro}</p>
<img id="qr" src="/enroll/qr.svg?e={id}" width="264" height="264" alt="QR code">
<dl class="manual">
<dt>{code_label}</dt><dd id="manual-code">{code}</dd>
<dt>{url_label}</dt><dd id="server-url">{url}</dd>
</dl>
<p id="status" class="status">{waiting}</p>
<div id="number" class="number" hidden></div>
<form id="retry" method="post" action="/enroll/restart" hidden><button type="submit">{new_code}</button></form>
<script>{script}</script>"#,
            heading = t.enroll_heading,
            intro = t.enroll_intro,
            id = escape(enrollment_id),
            code_label = t.manual_code,
            code = escape(manual_code),
            url_label = t.server_url,
            url = escape(server_url),
            waiting = t.enroll_waiting,
            new_code = t.new_code_button,
            script = live_status_script("/enroll/events"),
        ))
    }

    /// The sign-in number, large, and the live status.
    pub fn approve(&self, number: &str) -> Html<String> {
        let t = self.t();
        self.layout(&format!(
            r#"<h1>{heading}</h1>
<p>{intro}</p>
<div id="number" class="number">{number}</div>
<p id="status" class="status">{waiting}</p>
<form id="retry" method="post" action="/approve/retry" hidden><button type="submit">{retry}</button></form>
<p id="use-code" hidden><a class="button secondary" href="/approve/code">{use_code}</a></p>
{lost}
<script>{script}</script>"#,
            heading = t.approve_heading,
            intro = t.approve_intro,
            number = escape(number),
            waiting = t.approve_waiting,
            retry = t.retry_button,
            use_code = t.use_code_button,
            lost = self.lost_phone(),
            script = live_status_script("/approve/events"),
        ))
    }

    /// The form for an offline code from the app, with an error above it.
    pub fn offline_code(&self, notice: Option<&str>) -> Html<String> {
        let t = self.t();
        let notice = notice.map_or(String::new(), |text| {
            format!(r#"<p class="error" id="notice">{}</p>"#, escape(text))
        });
        self.layout(&format!(
            r#"<h1>{heading}</h1>
<p>{intro}</p>
{notice}
<form method="post" action="/approve/code">
<label>{label}<input name="code" id="code" inputmode="numeric" autocomplete="one-time-code" pattern="[0-9 ]{{6,7}}" maxlength="7" required></label>
<button type="submit">{button}</button>
</form>
<form method="post" action="/approve/retry"><button type="submit" class="secondary">{retry}</button></form>"#,
            heading = t.code_heading,
            intro = t.code_intro,
            label = t.code_label,
            button = t.code_button,
            retry = t.retry_button,
        ))
    }

    /// The terms of use to accept.
    pub fn terms(&self) -> Html<String> {
        let t = self.t();
        let body: String = t
            .terms_body
            .iter()
            .map(|paragraph| format!("<p>{paragraph}</p>"))
            .collect();
        self.layout(&format!(
            r#"<h1>{heading}</h1>
<section id="terms">{body}</section>
<form method="post" action="/terms"><button type="submit" id="accept">{accept}</button></form>"#,
            heading = t.terms_heading,
            accept = t.accept_button,
        ))
    }

    /// The signed-in page.
    pub fn welcome(&self, email: &str) -> Html<String> {
        let t = self.t();
        self.layout(&format!(
            r#"<h1 id="signed-in">{heading}</h1>
<p>{body}</p>
<form method="post" action="/sign-out"><button type="submit">{sign_out}</button></form>"#,
            heading = t.welcome_heading,
            body = t.welcome_body.replace("{email}", &escape(email)),
            sign_out = t.sign_out,
        ))
    }
}

/// Listens to the page's server-sent events. Each message is JSON:
/// `text` for the status line, `number` to show, `next` to go to,
/// `retry` to offer a new attempt (and fade a spent QR code), `code` to
/// offer an offline code instead; `final` closes the stream.
fn live_status_script(events_url: &str) -> String {
    format!(
        r#"
const events = new EventSource("{events_url}");
events.onmessage = (event) => {{
  const m = JSON.parse(event.data);
  document.getElementById("status").textContent = m.text;
  document.getElementById("status").dataset.state = m.state;
  if (m.number) {{
    const number = document.getElementById("number");
    number.textContent = m.number;
    number.hidden = false;
  }}
  if (m.final) events.close();
  if (m.code) document.getElementById("use-code").hidden = false;
  if (m.retry) {{
    document.getElementById("retry").hidden = false;
    // A QR code that can no longer be used should not look scannable.
    document.getElementById("qr")?.classList.add("spent");
  }}
  if (m.next) window.location.assign(m.next);
}};"#
    )
}

/// Escapes text for HTML content and quoted attributes.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = r#"
body { margin: 0; font-family: "Noto Sans CJK JP", "Noto Sans JP", "Hiragino Sans", system-ui, sans-serif; background: #f4f6f8; color: #1b2430; }
header { background: #1b3a5c; color: #fff; padding: 14px 24px; font-size: 18px; font-weight: 600; }
.logo { color: #7cc4ff; }
main { max-width: 520px; margin: 32px auto; background: #fff; padding: 28px 32px; border-radius: 10px; box-shadow: 0 2px 10px rgba(0,0,0,.08); }
h1 { font-size: 22px; margin-top: 0; }
label { display: block; margin: 12px 0; font-size: 14px; }
input { display: block; width: 100%; box-sizing: border-box; padding: 9px; margin-top: 4px; font-size: 16px; border: 1px solid #b8c2cc; border-radius: 6px; }
a.button { display: inline-block; padding: 10px 22px; font-size: 16px; border-radius: 6px; text-decoration: none; }
.secondary { background: #fff; color: #1f6feb; border: 1px solid #1f6feb; }
button { margin-top: 12px; padding: 10px 22px; font-size: 16px; background: #1f6feb; color: #fff; border: 0; border-radius: 6px; cursor: pointer; }
.hint { color: #5b6b7b; font-size: 13px; }
.error { color: #b42318; background: #fef3f2; padding: 10px; border-radius: 6px; }
#qr { display: block; margin: 16px auto; background: #fff; }
#qr.spent { opacity: .12; }
.manual { display: grid; grid-template-columns: max-content 1fr; gap: 4px 14px; font-size: 14px; }
.manual dd { margin: 0; font-family: ui-monospace, monospace; }
.number { font-size: 72px; font-weight: 700; text-align: center; letter-spacing: 6px; margin: 16px 0; color: #1b3a5c; }
.status { text-align: center; font-size: 16px; }
.status[data-state="approved"], .status[data-state="verified"] { color: #067647; }
.status[data-state="denied"], .status[data-state="expired"], .status[data-state="failed"], .status[data-state="error"] { color: #b42318; }
aside { margin-top: 28px; padding-top: 14px; border-top: 1px solid #e3e8ee; font-size: 13px; color: #5b6b7b; }
aside h2 { font-size: 14px; margin: 0 0 4px; }
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_covers_markup_and_quotes() {
        assert_eq!(
            escape(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }

    #[test]
    fn pages_follow_the_language() {
        let ja = Page::new(Lang::Ja).sign_in(None).0;
        assert!(ja.contains(r#"<html lang="ja">"#) && ja.contains("サインイン"));
        let en = Page::new(Lang::En).welcome("<x>@example.com").0;
        assert!(en.contains("Signed in as &lt;x&gt;@example.com."));
    }
}

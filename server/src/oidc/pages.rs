//! The verification page's HTML, written out by hand: a layout and one
//! function per view. Every value from outside goes through [`escape`].
//!
//! Accessibility: each page has one `h1`, the live status is an ARIA live
//! region, the number is text (not an image) and large, every action is a
//! real form button that works without script, and the QR code has its
//! code and URL beneath it for those who cannot scan it.

use super::i18n::{Lang, Texts};
use axum::response::Html;

/// What every view needs: the language, the relying party's name, and the
/// base path of this authorization's pages (`…/verify/<id>`).
pub struct Page<'a> {
    pub lang: Lang,
    pub app: &'a str,
    pub base: &'a str,
}

/// A new enrollment's code, shown once.
pub struct EnrollmentCode<'a> {
    /// The QR code, as a `data:` URI.
    pub qr_image: &'a str,
    pub manual_code: &'a str,
    pub server_url: &'a str,
}

/// What an outcome page offers besides returning to the application.
pub enum Offer {
    Nothing,
    Retry,
    NewCode,
}

impl Page<'_> {
    fn t(&self) -> &'static Texts {
        self.lang.texts()
    }

    fn layout(&self, body: &str) -> Html<String> {
        let for_app = format!(
            r#"<p class="app" id="app">{}</p>"#,
            self.t().for_app.replace("{app}", &escape(self.app))
        );
        self.page(&for_app, body)
    }

    /// The document around `intro` and `body`.
    fn page(&self, intro: &str, body: &str) -> Html<String> {
        let t = self.t();
        Html(format!(
            r#"<!doctype html>
<html lang="{lang}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>{title}</title>
<style>{STYLE}</style>
</head>
<body>
<header><span class="logo" aria-hidden="true">◆</span> {title}</header>
<main>
{intro}
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

    fn return_form(&self) -> String {
        format!(
            r#"<form id="return" method="post" action="{base}/return"><button type="submit" class="secondary">{label}</button></form>"#,
            base = escape(self.base),
            label = self.t().return_button.replace("{app}", &escape(self.app)),
        )
    }

    /// The live status: the page reloads when its view (`view`) changes.
    fn live(&self, view: &str) -> String {
        format!(
            r#"<p class="hint"><noscript>{check}</noscript></p>
<script>{script}</script>"#,
            check = self.t().check_again,
            script = live_script(&format!("{}/status", self.base), view),
        )
    }

    /// The sign-in number, large, waiting for the phone.
    pub fn approve(&self, number: &str, view: &str) -> Html<String> {
        let t = self.t();
        self.layout(&format!(
            r#"<h1>{heading}</h1>
<p>{intro}</p>
<div id="number" class="number" aria-label="{number}">{number}</div>
<p id="status" class="status" role="status" aria-live="polite" data-state="waiting">{waiting}</p>
{ret}
{lost}
{live}"#,
            heading = t.approve_heading,
            intro = t.approve_intro,
            number = escape(number),
            waiting = t.waiting,
            ret = self.return_form(),
            lost = self.lost_phone(),
            live = self.live(view),
        ))
    }

    /// A first device's enrollment: the QR code with the code and URL (on
    /// the page that began it), then, once the app registered, the number
    /// to confirm it. Without either, a new code is offered.
    pub fn enroll(
        &self,
        code: Option<&EnrollmentCode<'_>>,
        number: Option<&str>,
        view: &str,
    ) -> Html<String> {
        let t = self.t();
        let (state, status) = match number {
            Some(_) => ("registered", t.enroll_registered),
            None => ("waiting", t.enroll_waiting),
        };
        let qr = match code {
            Some(code) => format!(
                r#"<p>{intro}</p>
<img id="qr" src="{image}" width="264" height="264" alt="QR code">
<dl class="manual">
<dt>{code_label}</dt><dd id="manual-code">{manual}</dd>
<dt>{url_label}</dt><dd id="server-url">{url}</dd>
</dl>"#,
                intro = t.enroll_intro,
                image = escape(code.qr_image),
                code_label = t.manual_code,
                manual = escape(code.manual_code),
                url_label = t.server_url,
                url = escape(code.server_url),
            ),
            None if number.is_none() => self.retry_form(t.new_code_button),
            None => String::new(),
        };
        let number = number.map_or(String::new(), |n| {
            format!(r#"<div id="number" class="number">{}</div>"#, escape(n))
        });
        self.layout(&format!(
            r#"<h1>{heading}</h1>
{qr}
<p id="status" class="status" role="status" aria-live="polite" data-state="{state}">{status}</p>
{number}
{ret}
{live}"#,
            heading = t.enroll_heading,
            ret = self.return_form(),
            live = self.live(view),
        ))
    }

    /// How a sign-in ended (or why it cannot start): the message, what to
    /// do next, and the way back to the application.
    pub fn outcome(&self, state: &str, text: &str, offer: Offer, lost_phone: bool) -> Html<String> {
        let t = self.t();
        let offer = match offer {
            Offer::Nothing => String::new(),
            Offer::Retry => self.retry_form(t.retry_button),
            Offer::NewCode => self.retry_form(t.new_code_button),
        };
        self.layout(&format!(
            r#"<h1>{heading}</h1>
<p id="status" class="status" role="alert" data-state="{state}">{text}</p>
{offer}
{ret}
{lost}"#,
            heading = t.outcome_heading,
            ret = self.return_form(),
            lost = if lost_phone {
                self.lost_phone()
            } else {
                String::new()
            },
        ))
    }

    fn retry_form(&self, label: &str) -> String {
        format!(
            r#"<form id="retry" method="post" action="{base}/retry"><button type="submit">{label}</button></form>"#,
            base = escape(self.base),
        )
    }
}

/// A page with a message only, for a request that cannot go on (and whose
/// application cannot be told).
pub fn message(lang: Lang, state: &str, text: &str) -> Html<String> {
    Page {
        lang,
        app: "",
        base: "",
    }
    .page(
        "",
        &format!(
            r#"<h1>{}</h1><p id="status" class="status" role="alert" data-state="{state}">{}</p>"#,
            lang.texts().title,
            escape(text)
        ),
    )
}

/// Long-polls the status endpoint and reloads the page when the view it
/// shows has changed (the server renders every view; the script only says
/// when). Network errors retry after a pause.
fn live_script(status_url: &str, view: &str) -> String {
    let url = serde_json::to_string(status_url).unwrap_or_default();
    let view = serde_json::to_string(view).unwrap_or_default();
    format!(
        r#"
(async () => {{
  const seen = {view};
  for (;;) {{
    try {{
      const response = await fetch({url} + "?seen=" + encodeURIComponent(seen), {{ cache: "no-store" }});
      if (response.ok) {{
        const status = await response.json();
        if (status.view !== seen) {{ window.location.reload(); return; }}
        continue;
      }}
    }} catch (e) {{}}
    await new Promise((resolve) => setTimeout(resolve, 2000));
  }}
}})();"#
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
.app { color: #4a5a6a; font-size: 14px; margin: 0 0 8px; }
button { margin-top: 12px; padding: 10px 22px; font-size: 16px; background: #1f6feb; color: #fff; border: 0; border-radius: 6px; cursor: pointer; }
button.secondary { background: #fff; color: #1f6feb; border: 1px solid #1f6feb; }
button:focus-visible { outline: 3px solid #0b3d91; outline-offset: 2px; }
.hint { color: #4a5a6a; font-size: 13px; }
#qr { display: block; margin: 16px auto; background: #fff; }
.manual { display: grid; grid-template-columns: max-content 1fr; gap: 4px 14px; font-size: 14px; }
.manual dd { margin: 0; font-family: ui-monospace, monospace; }
.number { font-size: 72px; font-weight: 700; text-align: center; letter-spacing: 6px; margin: 16px 0; color: #1b3a5c; }
.status { text-align: center; font-size: 16px; }
.status[data-state="denied"], .status[data-state="expired"], .status[data-state="reported"], .status[data-state="blocked"], .status[data-state="failed"], .status[data-state="error"] { color: #b42318; }
aside { margin-top: 28px; padding-top: 14px; border-top: 1px solid #e3e8ee; font-size: 13px; color: #4a5a6a; }
aside h2 { font-size: 14px; margin: 0 0 4px; }
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_escaped_and_pages_follow_the_language() {
        let page = Page {
            lang: Lang::En,
            app: "<App>",
            base: "/verify/x",
        };
        let html = page.approve("42", "challenge:pending").0;
        assert!(html.contains(r#"<html lang="en">"#));
        assert!(html.contains("Signing in to &lt;App&gt;"));
        assert!(html.contains(r#"class="number" aria-label="42">42<"#));
        let ja = message(Lang::Ja, "error", "x").0;
        assert!(ja.contains(r#"<html lang="ja">"#) && !ja.contains(r#"id="app""#));
    }
}

//! The verification page's Japanese and English, chosen as the demo portal
//! chooses: the browser's `Accept-Language` (the highest `q` wins, the
//! earlier tag on a tie), Japanese when it names neither, since the first
//! users are Japanese.

use axum::http::{header::ACCEPT_LANGUAGE, HeaderMap};

/// A language of the pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Ja,
    En,
}

impl Lang {
    /// The language of a request.
    pub fn from_headers(headers: &HeaderMap) -> Self {
        let header = headers
            .get(ACCEPT_LANGUAGE)
            .and_then(|value| value.to_str().ok())
            .unwrap_or("");
        let mut best: Option<(f32, Lang)> = None;
        for item in header.split(',') {
            let mut parts = item.split(';').map(str::trim);
            let Some(lang) = Self::from_tag(parts.next().unwrap_or("")) else {
                continue;
            };
            let q = parts
                .find_map(|p| p.strip_prefix("q="))
                .and_then(|q| q.parse::<f32>().ok())
                .unwrap_or(1.0);
            if q > 0.0 && best.is_none_or(|(best_q, _)| q > best_q) {
                best = Some((q, lang));
            }
        }
        best.map_or(Lang::Ja, |(_, lang)| lang)
    }

    /// The language of a tag such as `en-US`, if it is one of ours.
    fn from_tag(tag: &str) -> Option<Self> {
        match tag.split('-').next()?.to_ascii_lowercase().as_str() {
            "ja" => Some(Lang::Ja),
            "en" => Some(Lang::En),
            _ => None,
        }
    }

    /// The page's `lang` attribute.
    pub fn code(self) -> &'static str {
        match self {
            Lang::Ja => "ja",
            Lang::En => "en",
        }
    }

    /// The texts in this language.
    pub fn texts(self) -> &'static Texts {
        match self {
            Lang::Ja => &JA,
            Lang::En => &EN,
        }
    }
}

/// Every text of the pages. `{app}` is replaced by the relying party's name.
pub struct Texts {
    pub title: &'static str,
    pub for_app: &'static str,
    pub approve_heading: &'static str,
    pub approve_intro: &'static str,
    pub waiting: &'static str,
    pub enroll_heading: &'static str,
    pub enroll_intro: &'static str,
    pub manual_code: &'static str,
    pub server_url: &'static str,
    pub enroll_waiting: &'static str,
    pub enroll_registered: &'static str,
    pub enroll_failed: &'static str,
    pub enroll_expired: &'static str,
    pub outcome_heading: &'static str,
    pub denied: &'static str,
    pub wrong_number: &'static str,
    pub reported: &'static str,
    pub expired: &'static str,
    pub replaced: &'static str,
    pub blocked: &'static str,
    pub rate_limited: &'static str,
    pub not_set_up: &'static str,
    pub lost_phone_title: &'static str,
    pub lost_phone_body: &'static str,
    pub retry_button: &'static str,
    pub new_code_button: &'static str,
    pub return_button: &'static str,
    pub check_again: &'static str,
    pub finished: &'static str,
    pub bad_request: &'static str,
    pub service_error: &'static str,
}

static EN: Texts = Texts {
    title: "Sign-in verification",
    for_app: "Signing in to {app}",
    approve_heading: "Approve the sign-in in the app",
    approve_intro: "Open the authenticator app and enter this number:",
    waiting: "Waiting for approval…",
    enroll_heading: "Set up the authenticator app",
    enroll_intro: "Scan this QR code with the authenticator app. If you cannot scan it, type the code and the server URL instead.",
    manual_code: "Code",
    server_url: "Server URL",
    enroll_waiting: "Waiting for the app to scan the code…",
    enroll_registered: "Enter this number in the app to confirm it:",
    enroll_failed: "The number did not match, or the app denied. Get a new code and try again.",
    enroll_expired: "This QR code has expired. Get a new code to continue.",
    outcome_heading: "The sign-in did not go through",
    denied: "The sign-in was denied in the app.",
    wrong_number: "The number entered in the app did not match. Try again.",
    reported: "You reported that this sign-in was not yours. Sign-ins are blocked for now and your administrator will be told.",
    expired: "The request expired before it was approved.",
    replaced: "A newer sign-in request replaced this one.",
    blocked: "Sign-in is blocked after a \"this wasn't me\" report. Ask your administrator to unblock your account.",
    rate_limited: "Too many sign-in requests. Wait a few minutes, then try again.",
    not_set_up: "No authenticator app is set up for your account yet. Set it up in your organisation's portal, or ask your administrator.",
    lost_phone_title: "Lost your phone?",
    lost_phone_body: "Ask your administrator to reset your sign-in methods. The lost phone loses its access at once \
        and can no longer approve anything. At your next sign-in you scan a new QR code with your new phone.",
    retry_button: "Try again",
    new_code_button: "Get a new code",
    return_button: "Return to {app}",
    check_again: "This page updates by itself. If it does not, reload it.",
    finished: "This sign-in is already finished. Start again from the application.",
    bad_request: "This sign-in request cannot be used. Start again from the application.",
    service_error: "The sign-in service is not available right now. Try again later.",
};

static JA: Texts = Texts {
    title: "サインインの確認",
    for_app: "{app} へのサインイン",
    approve_heading: "アプリでサインインを承認してください",
    approve_intro: "認証アプリを開いて、この番号を入力してください:",
    waiting: "承認を待っています…",
    enroll_heading: "認証アプリの設定",
    enroll_intro: "認証アプリでこのQRコードを読み取ってください。読み取れない場合は、コードとサーバーURLを入力してください。",
    manual_code: "コード",
    server_url: "サーバーURL",
    enroll_waiting: "アプリがQRコードを読み取るのを待っています…",
    enroll_registered: "確認のため、この番号をアプリに入力してください:",
    enroll_failed: "番号が一致しないか、アプリで拒否されました。新しいコードでもう一度お試しください。",
    enroll_expired: "このQRコードは有効期限が切れました。新しいコードを取得してください。",
    outcome_heading: "サインインは完了していません",
    denied: "アプリでサインインが拒否されました。",
    wrong_number: "アプリに入力された番号が一致しませんでした。もう一度お試しください。",
    reported: "このサインインに心当たりがないと報告されました。サインインは一時的にブロックされ、管理者に通知されます。",
    expired: "承認されないまま有効期限が切れました。",
    replaced: "新しいサインイン要求に置き換えられました。",
    blocked: "「心当たりがない」と報告されたため、サインインがブロックされています。管理者にブロックの解除を依頼してください。",
    rate_limited: "サインイン要求が多すぎます。数分待ってからもう一度お試しください。",
    not_set_up: "このアカウントには認証アプリがまだ設定されていません。組織のポータルで設定するか、管理者にお問い合わせください。",
    lost_phone_title: "スマートフォンを紛失した場合",
    lost_phone_body: "管理者にサインイン方法のリセットを依頼してください。紛失した端末はすぐに無効になり、\
        何も承認できなくなります。次回のサインイン時に、新しいスマートフォンで新しいQRコードを読み取ってください。",
    retry_button: "もう一度試す",
    new_code_button: "新しいコードを取得",
    return_button: "{app} に戻る",
    check_again: "このページは自動的に更新されます。更新されない場合は再読み込みしてください。",
    finished: "このサインインはすでに完了しています。アプリケーションから最初からやり直してください。",
    bad_request: "このサインイン要求は使用できません。アプリケーションから最初からやり直してください。",
    service_error: "現在サインインサービスを利用できません。しばらくしてからもう一度お試しください。",
};

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn lang(header: &str) -> Lang {
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT_LANGUAGE, HeaderValue::from_str(header).unwrap());
        Lang::from_headers(&headers)
    }

    #[test]
    fn the_preferred_language_wins_and_japanese_is_the_default() {
        assert_eq!(lang("en-US,en;q=0.9"), Lang::En);
        assert_eq!(lang("fr, en;q=0.5, ja;q=0.8"), Lang::Ja);
        assert_eq!(lang("de"), Lang::Ja);
        assert_eq!(Lang::from_headers(&HeaderMap::new()), Lang::Ja);
    }
}

<?php
// The few lines a PHP portal needs to call mfa-server's HTTP/JSON API
// (docs/openapi.json): php-curl, the portal API key, and JSON.
//
// Settings come from the environment:
//   MFA_HTTP_URL    the API's base URL (mfa-server's http_listen), e.g. https://mfa.example.com:8443
//   MFA_PORTAL_KEY  a portal API key (mfa-server api-key create --role portal)
//   MFA_CA_FILE     optional: the CA that signs the server's certificate

declare(strict_types=1);

final class MfaError extends RuntimeException
{
    /** @param array<string, mixed> $error the "error" object of the JSON answer */
    public function __construct(public readonly array $error)
    {
        parent::__construct(($error['reason'] ?? 'ERROR') . ': ' . ($error['message'] ?? ''));
    }

    /** The machine-readable reason, e.g. NO_ACTIVE_DEVICE (docs/protocol.md lists them). */
    public function reason(): string
    {
        return (string)($this->error['reason'] ?? '');
    }
}

/**
 * Calls the API and returns the decoded JSON answer, or throws MfaError
 * with the server's error (every error has one JSON shape).
 *
 * @param array<string, mixed>|null $body
 * @return array<string, mixed>
 */
function mfa_call(string $method, string $path, ?array $body = null, int $timeout = 10): array
{
    $base = rtrim((string)getenv('MFA_HTTP_URL'), '/');
    $curl = curl_init($base . $path);
    $headers = ['Authorization: Bearer ' . getenv('MFA_PORTAL_KEY'), 'Accept: application/json'];
    $options = [
        CURLOPT_CUSTOMREQUEST => $method,
        CURLOPT_RETURNTRANSFER => true,
        CURLOPT_TIMEOUT => $timeout,
        CURLOPT_CONNECTTIMEOUT => 5,
    ];
    if ($body !== null) {
        $headers[] = 'Content-Type: application/json';
        $options[CURLOPT_POSTFIELDS] = json_encode($body, JSON_THROW_ON_ERROR);
    }
    if (getenv('MFA_CA_FILE')) {
        $options[CURLOPT_CAINFO] = getenv('MFA_CA_FILE');
    }
    $options[CURLOPT_HTTPHEADER] = $headers;
    curl_setopt_array($curl, $options);
    $text = curl_exec($curl);
    if ($text === false) {
        $error = curl_error($curl);
        curl_close($curl);
        throw new MfaError(['reason' => 'UNREACHABLE', 'message' => "the MFA service did not answer: $error"]);
    }
    $status = curl_getinfo($curl, CURLINFO_RESPONSE_CODE);
    curl_close($curl);
    $json = json_decode((string)$text, true);
    if (!is_array($json)) {
        throw new MfaError(['reason' => 'BAD_ANSWER', 'message' => "HTTP $status without a JSON body"]);
    }
    if ($status >= 400) {
        throw new MfaError($json['error'] ?? []);
    }
    return $json;
}

/**
 * Reads a challenge or an enrollment, waiting up to $seconds while its
 * state is $whileState (a long poll: the answer comes as soon as it changes).
 *
 * @return array<string, mixed>
 */
function mfa_wait(string $path, string $whileState, int $seconds = 25): array
{
    $query = http_build_query(['wait' => "{$seconds}s", 'while_state' => $whileState]);
    return mfa_call('GET', "$path?$query", null, $seconds + 10);
}

function h(string $text): string
{
    return htmlspecialchars($text, ENT_QUOTES | ENT_HTML5, 'UTF-8');
}

function page(string $title, string $body): void
{
    header('Content-Type: text/html; charset=utf-8');
    header('Cache-Control: no-store');
    echo '<!doctype html><html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<title>', h($title), ' · Example portal</title>',
        '<style>body{font-family:sans-serif;max-width:36rem;margin:2rem auto;padding:0 1rem}',
        '#number{font-size:4rem;font-weight:bold;letter-spacing:.2em}</style></head><body>',
        '<h1>', h($title), '</h1>', $body, '<p><a href="/">Start again</a></p></body></html>';
}

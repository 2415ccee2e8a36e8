//! The phone's side: enroll, fetch challenges, answer them.
//!
//! Every call after enrollment carries a signature by the device key over
//! bytes that [`mfa_proto::signing`] defines, made through the [`Signer`]
//! the [`KeyStore`] hands out. The builders of those requests are pure
//! functions of the signer and the inputs, so the committed test vectors
//! pin them.

use std::{
    sync::Arc,
    time::{SystemTime, UNIX_EPOCH},
};

use ed25519_dalek::VerifyingKey;
use mfa_proto::{
    enrollment::EnrollmentUri,
    signing::{self, UserVerification},
    v1::{
        device_service_client::DeviceServiceClient, ChallengeState, CompleteEnrollmentRequest,
        Decision, DenyReason, DeviceProof, KeyAlgorithm as ProtoKeyAlgorithm,
        ListPendingChallengesRequest, PushPlatform, RemoveDeviceRequest, RespondToChallengeRequest,
        UpdatePushTokenRequest, UserVerification as ProtoUserVerification,
    },
};
use rand::{rngs::OsRng, RngCore};
use tonic::transport::Channel;

use crate::{Account, ConnectOptions, Error, KeyStore, Signer, VerifiedChallenge};

/// Method names that the device-request signature binds.
mod method {
    pub const LIST_PENDING_CHALLENGES: &str = "ListPendingChallenges";
    pub const UPDATE_PUSH_TOKEN: &str = "UpdatePushToken";
    pub const REMOVE_DEVICE: &str = "RemoveDevice";
}

/// What the app tells the server about the phone at enrollment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    /// A name for the device, e.g. "Hanako's iPhone"; 1 to 128 bytes.
    pub name: String,
    /// How to notify the device.
    pub push_platform: PushPlatform,
    /// The platform's push token; empty only with [`PushPlatform::None`].
    pub push_token: String,
}

/// The server's answer to a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answer {
    /// The state the decision produced, e.g. [`ChallengeState::Approved`].
    pub state: ChallengeState,
    /// Why it was denied, when `state` is [`ChallengeState::Denied`].
    pub deny_reason: DenyReason,
}

/// An enrolled device: answers the challenges of one account. Clones share
/// the connection and the key.
#[derive(Clone)]
pub struct Authenticator {
    account: Account,
    signer: Arc<dyn Signer>,
    server_key: VerifyingKey,
    client: DeviceServiceClient<Channel>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("account", &self.account)
            .field("key_algorithm", &self.signer.algorithm())
            .finish_non_exhaustive()
    }
}

impl Authenticator {
    /// Enrolls this device with the activation code in `uri` and a new key
    /// that `store` makes (of the store's algorithm), saves the new account
    /// in `store`, and returns it with the verification challenge.
    ///
    /// The person then types the number the portal shows and the app calls
    /// [`approve`](Self::approve) with it, which activates the device.
    ///
    /// When the URI came from a QR code it carries the server's key, and a
    /// server that answers with another key is refused with
    /// [`Error::BadServerSignature`]; nothing is saved then.
    pub async fn enroll(
        uri: &EnrollmentUri,
        info: DeviceInfo,
        store: &dyn KeyStore,
    ) -> Result<(Self, VerifiedChallenge), Error> {
        Self::enroll_with(uri, info, store, &ConnectOptions::default()).await
    }

    /// [`enroll`](Self::enroll) with connection settings, e.g. the CA of a
    /// server whose certificate is not signed by a public CA.
    pub async fn enroll_with(
        uri: &EnrollmentUri,
        info: DeviceInfo,
        store: &dyn KeyStore,
        options: &ConnectOptions,
    ) -> Result<(Self, VerifiedChallenge), Error> {
        let channel = options.connect(&uri.server_url).await?;
        Self::enroll_over(channel, uri, info, store).await
    }

    /// [`enroll`](Self::enroll) over an existing connection to the server in
    /// `uri`, for programs that act as many devices at once (a load
    /// generator, a device farm) and share a few connections between them.
    pub async fn enroll_over(
        channel: Channel,
        uri: &EnrollmentUri,
        info: DeviceInfo,
        store: &dyn KeyStore,
    ) -> Result<(Self, VerifiedChallenge), Error> {
        let signer = store.create_key()?;
        let request = enrollment_request(&*signer, &uri.activation_code, info)?;
        let mut client = DeviceServiceClient::new(channel);
        let response = client.complete_enrollment(request).await?.into_inner();

        let server_public_key = <[u8; 32]>::try_from(response.server_public_key.as_slice())
            .map_err(|_| Error::BadServerSignature)?;
        if uri
            .server_public_key
            .is_some_and(|expected| expected != server_public_key)
        {
            return Err(Error::BadServerSignature);
        }
        let server_key =
            signing::parse_public_key(&server_public_key).map_err(|_| Error::BadServerSignature)?;
        let verification = response
            .verification_challenge
            .as_ref()
            .ok_or(Error::Protocol(
                "the enrollment has no verification challenge",
            ))?;
        let verification = VerifiedChallenge::verify(verification, &server_key)?;
        if response.device_id.is_empty() {
            return Err(Error::Protocol("the enrollment has no device id"));
        }

        let account = Account::new(uri.server_url.clone(), &response, server_public_key);
        store.save(&account)?;
        let authenticator = Self {
            account,
            signer,
            server_key,
            client,
        };
        Ok((authenticator, verification))
    }

    /// Opens the account saved in `store`; `None` when no account is saved.
    ///
    /// Connects lazily: an app starting without network opens its account
    /// anyway, and the first call reports the connection failure.
    pub async fn open(store: &dyn KeyStore) -> Result<Option<Self>, Error> {
        Self::open_with(store, &ConnectOptions::default()).await
    }

    /// [`open`](Self::open) with connection settings.
    pub async fn open_with(
        store: &dyn KeyStore,
        options: &ConnectOptions,
    ) -> Result<Option<Self>, Error> {
        let Some((account, signer)) = store.load()? else {
            return Ok(None);
        };
        Self::from_account(account, signer, options).map(Some)
    }

    /// An account and its device key kept apart by the app (say, the
    /// account in the app's storage and the key in the secure hardware);
    /// [`open_with`](Self::open_with) uses it. Connects lazily.
    pub fn from_account(
        account: Account,
        signer: Arc<dyn Signer>,
        options: &ConnectOptions,
    ) -> Result<Self, Error> {
        let server_key = signing::parse_public_key(&account.server_public_key).map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("the saved server key is not usable: {e}"),
            )
        })?;
        let channel = options.endpoint(&account.server_url)?.connect_lazy();
        Ok(Self {
            account,
            signer,
            server_key,
            client: DeviceServiceClient::new(channel),
        })
    }

    /// The enrolled account.
    pub fn account(&self) -> &Account {
        &self.account
    }

    /// The device key, which signs every call.
    pub fn signer(&self) -> &Arc<dyn Signer> {
        &self.signer
    }

    /// Fetches the challenges waiting for this device, newest first, each
    /// verified with the server's key.
    ///
    /// If any challenge's signature does not verify, fails with
    /// [`Error::BadServerSignature`] and shows none of them.
    pub async fn pending_challenges(&mut self) -> Result<Vec<VerifiedChallenge>, Error> {
        let request = self.signed_list_request()?;
        let response = self
            .client
            .list_pending_challenges(request)
            .await?
            .into_inner();
        response
            .challenges
            .iter()
            .map(|pending| VerifiedChallenge::verify(pending, &self.server_key))
            .collect()
    }

    /// Approves a challenge with the number the person typed, without user
    /// verification ([`UserVerification::None`]). A wrong number is not an
    /// error: the answer is then denied with [`DenyReason::WrongNumber`].
    /// When the challenge [requires user
    /// verification](VerifiedChallenge::requires_user_verification), use
    /// [`approve_verified`](Self::approve_verified).
    pub async fn approve(
        &mut self,
        challenge: &VerifiedChallenge,
        typed_number: &str,
    ) -> Result<Answer, Error> {
        self.approve_verified(challenge, typed_number, UserVerification::None)
            .await
    }

    /// Approves a challenge after the app verified the person with
    /// `verification` (a biometric, the device PIN); the signature covers
    /// it. Without a method the tenant accepts, the server denies the
    /// sign-in and fails the call with
    /// [`Error::is_user_verification_required`].
    pub async fn approve_verified(
        &mut self,
        challenge: &VerifiedChallenge,
        typed_number: &str,
        verification: UserVerification,
    ) -> Result<Answer, Error> {
        self.answer(challenge, Decision::Approve, typed_number, verification)
            .await
    }

    /// Denies a challenge.
    pub async fn deny(&mut self, challenge: &VerifiedChallenge) -> Result<Answer, Error> {
        self.answer(challenge, Decision::Deny, "", UserVerification::None)
            .await
    }

    /// Denies a challenge and reports that the sign-in was not the person's
    /// own; the server then blocks the user's challenges for a while.
    pub async fn report_fraud(&mut self, challenge: &VerifiedChallenge) -> Result<Answer, Error> {
        self.answer(challenge, Decision::ReportFraud, "", UserVerification::None)
            .await
    }

    async fn answer(
        &mut self,
        challenge: &VerifiedChallenge,
        decision: Decision,
        typed_number: &str,
        verification: UserVerification,
    ) -> Result<Answer, Error> {
        let request = self.approval_request(challenge, decision, typed_number, verification)?;
        let response = self
            .client
            .respond_to_challenge(request)
            .await?
            .into_inner();
        Ok(Answer {
            state: response.state(),
            deny_reason: response.deny_reason(),
        })
    }

    /// Tells the server the platform's new push token.
    pub async fn update_push_token(
        &mut self,
        platform: PushPlatform,
        token: &str,
    ) -> Result<(), Error> {
        let proof =
            self.device_proof(method::UPDATE_PUSH_TOKEN, &[platform.as_str_name(), token])?;
        let request = UpdatePushTokenRequest {
            proof: Some(proof),
            push_platform: platform.into(),
            push_token: token.to_owned(),
        };
        self.client.update_push_token(request).await?;
        Ok(())
    }

    /// Removes this device from the server, then deletes the saved account.
    ///
    /// A device the server already revoked, or no longer knows (an
    /// administrator deleted the user), is deleted locally all the same. On
    /// any other error the account stays saved; [`open`](Self::open) it to
    /// try again.
    pub async fn remove(mut self, store: &dyn KeyStore) -> Result<(), Error> {
        let request = RemoveDeviceRequest {
            proof: Some(self.device_proof(method::REMOVE_DEVICE, &[])?),
        };
        match self
            .client
            .remove_device(request)
            .await
            .map_err(Error::from)
        {
            Ok(_) => {}
            Err(e) if e.is_device_revoked() || e.is_device_unknown() => {}
            Err(e) => return Err(e),
        }
        store.delete()
    }

    /// For tests and advanced use: the gRPC client this authenticator uses,
    /// to send requests built with the methods below.
    pub fn client(&mut self) -> &mut DeviceServiceClient<Channel> {
        &mut self.client
    }

    /// For tests and advanced use: a freshly signed ListPendingChallenges
    /// request (new timestamp and nonce). The server accepts it once.
    pub fn signed_list_request(&self) -> Result<ListPendingChallengesRequest, Error> {
        Ok(ListPendingChallengesRequest {
            proof: Some(self.device_proof(method::LIST_PENDING_CHALLENGES, &[])?),
        })
    }

    /// For tests and advanced use: a freshly signed proof for any device
    /// call. `method` is the RPC's name, e.g. `"UpdatePushToken"`, and `body`
    /// the request's own fields in the order `docs/protocol.md` gives.
    pub fn device_proof(&self, method: &str, body: &[&str]) -> Result<DeviceProof, Error> {
        let mut nonce = [0u8; 16];
        OsRng.fill_bytes(&mut nonce);
        device_proof(
            &*self.signer,
            &self.account.device_id,
            method,
            now_ms(),
            &nonce,
            body,
        )
    }

    /// For tests and advanced use: the signed RespondToChallenge request for
    /// a decision. `typed_number` should be empty unless approving.
    pub fn approval_request(
        &self,
        challenge: &VerifiedChallenge,
        decision: Decision,
        typed_number: &str,
        verification: UserVerification,
    ) -> Result<RespondToChallengeRequest, Error> {
        approval_request(
            &*self.signer,
            &self.account.device_id,
            challenge,
            Response {
                decision,
                typed_number,
                verification: Some(verification),
            },
        )
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The CompleteEnrollment request, signed by the new device key. It names
/// the key's algorithm, so the signature covers it.
fn enrollment_request(
    signer: &dyn Signer,
    activation_code: &str,
    info: DeviceInfo,
) -> Result<CompleteEnrollmentRequest, Error> {
    let public_key = signer.public_key();
    let algorithm = signer.algorithm();
    let proof = signing::EnrollmentProof {
        activation_code,
        public_key: &public_key,
        push_platform: info.push_platform.as_str_name(),
        push_token: &info.push_token,
        device_name: &info.name,
        key_algorithm: Some(algorithm.wire_name()),
    };
    Ok(CompleteEnrollmentRequest {
        activation_code: activation_code.to_owned(),
        signature: signer.sign(&proof.signed_bytes())?,
        public_key,
        push_platform: info.push_platform.into(),
        push_token: info.push_token,
        device_name: info.name,
        key_algorithm: key_algorithm_value(algorithm).into(),
    })
}

fn key_algorithm_value(algorithm: signing::KeyAlgorithm) -> ProtoKeyAlgorithm {
    match algorithm {
        signing::KeyAlgorithm::Ed25519 => ProtoKeyAlgorithm::Ed25519,
        signing::KeyAlgorithm::EcdsaP256Sha256 => ProtoKeyAlgorithm::EcdsaP256Sha256,
    }
}

fn user_verification_value(method: UserVerification) -> ProtoUserVerification {
    match method {
        UserVerification::None => ProtoUserVerification::None,
        UserVerification::DevicePin => ProtoUserVerification::DevicePin,
        UserVerification::Biometric => ProtoUserVerification::Biometric,
    }
}

/// A device proof over the given call.
fn device_proof(
    signer: &dyn Signer,
    device_id: &str,
    method: &str,
    timestamp_ms: i64,
    nonce: &[u8],
    body: &[&str],
) -> Result<DeviceProof, Error> {
    let signed = signing::DeviceRequest {
        device_id,
        method,
        timestamp_ms,
        nonce,
        body,
    };
    Ok(DeviceProof {
        device_id: device_id.to_owned(),
        timestamp_ms,
        nonce: nonce.to_vec(),
        signature: signer.sign(&signed.signed_bytes())?,
    })
}

/// The person's answer to a challenge, as signed.
#[derive(Debug, Clone, Copy)]
struct Response<'a> {
    decision: Decision,
    typed_number: &'a str,
    /// `None` only to rebuild what apps of the first release signed.
    verification: Option<UserVerification>,
}

/// The bytes a device signs to answer `challenge`.
fn approval_bytes(device_id: &str, challenge: &VerifiedChallenge, response: Response) -> Vec<u8> {
    signing::Approval {
        tenant_id: &challenge.tenant_id,
        challenge_id: &challenge.challenge_id,
        device_id,
        decision: response.decision.as_str_name(),
        typed_number: response.typed_number,
        challenge_nonce: &challenge.nonce,
        user_verification: response.verification.map(UserVerification::wire_name),
    }
    .signed_bytes()
}

/// The signed RespondToChallenge request.
fn approval_request(
    signer: &dyn Signer,
    device_id: &str,
    challenge: &VerifiedChallenge,
    response: Response,
) -> Result<RespondToChallengeRequest, Error> {
    let bytes = approval_bytes(device_id, challenge, response);
    Ok(RespondToChallengeRequest {
        device_id: device_id.to_owned(),
        challenge_id: challenge.challenge_id.clone(),
        decision: response.decision.into(),
        typed_number: response.typed_number.to_owned(),
        signature: signer.sign(&bytes)?,
        user_verification: response
            .verification
            .map_or(ProtoUserVerification::Unspecified, user_verification_value)
            .into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        challenge::tests::pending_from_vector,
        test_vectors::{bytes, vectors},
    };

    fn key(vector: &serde_json::Value) -> crate::SoftwareKey {
        let seed: [u8; 32] = bytes(&vector["private_key_seed"]).try_into().unwrap();
        let algorithm = signing::KeyAlgorithm::ALL
            .into_iter()
            .find(|a| a.wire_name() == vector["algorithm"])
            .unwrap();
        crate::SoftwareKey::from_bytes(algorithm, &seed).unwrap()
    }

    fn text<'a>(vector: &'a serde_json::Value, name: &str) -> &'a str {
        vector["input"][name].as_str().unwrap()
    }

    /// A challenge as verification would produce it, from an approval vector.
    fn challenge_from_approval_vector(vector: &serde_json::Value) -> VerifiedChallenge {
        let context = &vectors("challenge_context")[0];
        let server_key = signing::parse_public_key(&bytes(&context["public_key"])).unwrap();
        let mut challenge =
            VerifiedChallenge::verify(&pending_from_vector(context), &server_key).unwrap();
        challenge.tenant_id = text(vector, "tenant_id").into();
        challenge.challenge_id = text(vector, "challenge_id").into();
        challenge.nonce = bytes(&vector["input"]["challenge_nonce"]);
        challenge
    }

    #[test]
    fn approval_matches_the_committed_vectors() {
        for vector in vectors("approval") {
            let challenge = challenge_from_approval_vector(&vector);
            let device_id = text(&vector, "device_id");
            let decision = Decision::from_str_name(text(&vector, "decision")).unwrap();
            let typed = text(&vector, "typed_number");
            let verification = vector["input"].get("user_verification").map(|name| {
                UserVerification::ALL
                    .into_iter()
                    .find(|m| m.wire_name() == name)
                    .unwrap()
            });
            let response = Response {
                decision,
                typed_number: typed,
                verification,
            };

            let message = approval_bytes(device_id, &challenge, response);
            assert_eq!(
                hex::encode(message),
                vector["message"].as_str().unwrap(),
                "{}",
                vector["name"]
            );

            let request = approval_request(&key(&vector), device_id, &challenge, response).unwrap();
            assert_eq!(request.signature, bytes(&vector["signature"]));
            assert_eq!(
                request.user_verification(),
                verification.map_or(ProtoUserVerification::Unspecified, user_verification_value)
            );
            assert_eq!(request.device_id, device_id);
            assert_eq!(request.challenge_id, text(&vector, "challenge_id"));
            assert_eq!(request.decision(), decision);
            assert_eq!(request.typed_number, typed);
        }
    }

    #[test]
    fn device_proofs_match_the_committed_vectors() {
        for vector in vectors("device_request") {
            let input = &vector["input"];
            let body: Vec<&str> = input["body"]
                .as_array()
                .unwrap()
                .iter()
                .map(|field| field.as_str().unwrap())
                .collect();
            let proof = device_proof(
                &key(&vector),
                text(&vector, "device_id"),
                text(&vector, "method"),
                input["timestamp_ms"].as_i64().unwrap(),
                &bytes(&input["nonce"]),
                &body,
            )
            .unwrap();
            assert_eq!(
                proof.signature,
                bytes(&vector["signature"]),
                "{}",
                vector["name"]
            );
            assert_eq!(proof.device_id, text(&vector, "device_id"));
            assert_eq!(proof.nonce, bytes(&input["nonce"]));
        }
    }

    #[test]
    fn enrollment_matches_the_committed_vectors() {
        // The SDK always names the algorithm; the unset form is the first
        // release's, which the server's tests cover.
        for vector in vectors("enrollment")
            .into_iter()
            .filter(|v| v["input"].get("key_algorithm").is_some())
        {
            let key = key(&vector);
            let info = DeviceInfo {
                name: text(&vector, "device_name").into(),
                push_platform: PushPlatform::from_str_name(text(&vector, "push_platform")).unwrap(),
                push_token: text(&vector, "push_token").into(),
            };
            let request = enrollment_request(&key, text(&vector, "activation_code"), info).unwrap();
            assert_eq!(request.public_key, bytes(&vector["input"]["public_key"]));
            assert_eq!(
                request.key_algorithm().as_str_name(),
                text(&vector, "key_algorithm")
            );
            assert_eq!(request.signature, bytes(&vector["signature"]));
            assert_eq!(request.device_name, text(&vector, "device_name"));
        }
    }

    #[test]
    fn the_method_names_are_the_protocols() {
        // The names are part of the signed bytes: the vectors use them.
        let methods: Vec<String> = vectors("device_request")
            .iter()
            .map(|v| text(v, "method").to_owned())
            .collect();
        assert!(methods.contains(&method::LIST_PENDING_CHALLENGES.to_owned()));
        assert!(methods.contains(&method::UPDATE_PUSH_TOKEN.to_owned()));
        assert_eq!(method::REMOVE_DEVICE, "RemoveDevice");
    }
}

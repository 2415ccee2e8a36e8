//! `mfa-server oidc-client …`: the relying parties of the OpenID provider.

use super::{time, CliResult, Table};
use clap::Subcommand;
use mfa_server::{config::Config, model::EntraTenant, server};

#[derive(Subcommand)]
pub enum OidcClientCommand {
    /// Registers a relying party for a tenant and prints its client id and,
    /// for a confidential client, its secret (once; only its hash is stored).
    Create {
        /// The tenant's id.
        #[arg(long)]
        tenant: String,
        /// The name shown on the verification page and on the phone.
        #[arg(long)]
        name: String,
        /// A redirect URI, matched exactly (repeat for more): https, or
        /// http on loopback.
        #[arg(long = "redirect-uri", required = true)]
        redirect_uris: Vec<String>,
        /// A public client (no secret; it must use PKCE). Only a
        /// confidential client can enroll a first device (pushed requests).
        #[arg(long, conflicts_with = "entra_tenant")]
        public: bool,
        /// Entra ID's external authentication method: the Entra tenant id
        /// whose `id_token_hint` the requests carry (such a client has no
        /// secret: Entra ID uses none).
        #[arg(long, requires = "entra_app_id")]
        entra_tenant: Option<String>,
        /// The app id of the external method's app registration in Entra ID
        /// (the hint's audience).
        #[arg(long, requires = "entra_tenant")]
        entra_app_id: Option<String>,
        /// The hint's issuer; default `https://login.microsoftonline.com/<tenant>/v2.0`.
        #[arg(long, requires = "entra_tenant")]
        entra_issuer: Option<String>,
        /// The tenant's keys: a JWKS URL or file; default
        /// `https://login.microsoftonline.com/<tenant>/discovery/v2.0/keys`.
        #[arg(long, requires = "entra_tenant")]
        entra_jwks: Option<String>,
    },
    /// Lists a tenant's relying parties: client id, kind, created, name and
    /// redirect URIs.
    List {
        /// The tenant's id.
        #[arg(long)]
        tenant: String,
    },
}

pub async fn run(config: &Config, command: OidcClientCommand) -> CliResult {
    let service = server::build_service(config, config.public_url()).await?;
    match command {
        OidcClientCommand::Create {
            tenant,
            name,
            redirect_uris,
            public,
            entra_tenant,
            entra_app_id,
            entra_issuer,
            entra_jwks,
        } => {
            let entra = entra_tenant
                .zip(entra_app_id)
                .map(|(tid, app_id)| EntraTenant {
                    issuer: entra_issuer
                        .unwrap_or_else(|| format!("https://login.microsoftonline.com/{tid}/v2.0")),
                    jwks: entra_jwks.unwrap_or_else(|| {
                        format!("https://login.microsoftonline.com/{tid}/discovery/v2.0/keys")
                    }),
                    tenant_id: tid,
                    app_id,
                });
            let registered = service
                // Entra ID's external method uses no client secret (the
                // implicit flow has no token request).
                .register_oidc_client(
                    &tenant,
                    &name,
                    &redirect_uris,
                    !public && entra.is_none(),
                    entra,
                )
                .await?;
            println!("client_id:     {}", registered.client.client_id);
            if let Some(secret) = registered.secret {
                println!("client_secret: {secret}");
                eprintln!("(this is the only time the secret is shown)");
            }
        }
        OidcClientCommand::List { tenant } => {
            let mut table = Table::new(["CLIENT_ID", "KIND", "CREATED", "NAME", "REDIRECT_URIS"]);
            for client in service.oidc_clients(&tenant).await? {
                table.row([
                    client.client_id,
                    if client.secret_hash.is_some() {
                        "confidential"
                    } else {
                        "public"
                    }
                    .to_owned(),
                    time(client.created_at),
                    client.display_name,
                    client.redirect_uris.join(" "),
                ]);
            }
            print!("{table}");
        }
    }
    Ok(())
}

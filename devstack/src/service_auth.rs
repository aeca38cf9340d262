//! How the gRPC stand-ins know who is calling: every call must carry the identity the gateway
//! signed ([`banyan_sources::service_identity`]), verified by a tonic interceptor before the
//! service sees the request. An unsigned, forged, expired or foreign-secret identity is refused
//! with `UNAUTHENTICATED`; a verified one is put in the request's extensions as
//! [`VerifiedCaller`], which the services read instead of any header.

use banyan_sources::ServiceIdentityKeys;
use tonic::{Request, Status};

/// The caller of a gRPC call, as the gateway vouched for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct VerifiedCaller {
    /// The user the call is made for.
    pub(crate) user_id: u64,
}

/// The interceptor in front of `EventService` and `DraftService`.
#[derive(Clone)]
pub(crate) struct VerifyIdentity {
    keys: ServiceIdentityKeys,
}

impl VerifyIdentity {
    pub(crate) fn new(keys: ServiceIdentityKeys) -> Self {
        Self { keys }
    }
}

impl tonic::service::Interceptor for VerifyIdentity {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        match self.keys.verify_metadata(request.metadata()) {
            Ok(claims) => {
                request.extensions_mut().insert(VerifiedCaller { user_id: claims.user_id });
                Ok(request)
            }
            Err(error) => {
                tracing::debug!(%error, "refused a call's identity");
                Err(Status::unauthenticated(error.to_string()))
            }
        }
    }
}

/// The verified caller of a request that passed [`VerifyIdentity`].
pub(crate) fn verified_caller<T>(request: &Request<T>) -> Result<&VerifiedCaller, Status> {
    request
        .extensions()
        .get::<VerifiedCaller>()
        .ok_or_else(|| Status::unauthenticated("the call carries no verified identity"))
}

"""Reviews: authorization.k8s.io/v1 access reviews and authentication.k8s.io/v1 token and self reviews.

None of these is stored: a client creates one and reads the answer in the
returned object's status.  Arktos added `tenant` to ResourceAttributes (JSON
only: its protobuf field number 8 is upstream's fieldSelector since 1.31); a
tenant user's reviews are evaluated inside its own tenant whatever it says.
"""

from __future__ import annotations

from arktos.api.schemas._dsl import Group
from arktos.api.schemas.meta import META

AUTHZ = "authorization.k8s.io"
AUTHN = "authentication.k8s.io"

z = Group("io.k8s.api.authorization.v1", (META,))
n = Group("io.k8s.api.authentication.v1", (META,))

# -- authorization.k8s.io/v1 ------------------------------------------------------------

z.kind("SubjectAccessReview", "Whether a user or group may perform an action; for system components and "
       "administrators. A tenant's users review users of their own tenant only.", """
    spec   SubjectAccessReviewSpec @req  The request being evaluated.
    status SubjectAccessReviewStatus  Filled in by the server: whether the request is allowed.
""", group=AUTHZ, version="v1", listed=False)
z.kind("SelfSubjectAccessReview", "Whether the caller may perform an action (kubectl auth can-i). An empty "
       "spec.resourceAttributes.namespace means all namespaces.", """
    spec   SelfSubjectAccessReviewSpec @req  The request being evaluated; user and groups are the caller's.
    status SubjectAccessReviewStatus  Filled in by the server: whether the request is allowed.
""", group=AUTHZ, version="v1", listed=False)
z.kind("LocalSubjectAccessReview", "A SubjectAccessReview within one namespace, for namespace administrators.",
       """
    spec   SubjectAccessReviewSpec @req  The request; resourceAttributes.namespace must be the request's.
    status SubjectAccessReviewStatus  Filled in by the server: whether the request is allowed.
""", group=AUTHZ, version="v1", listed=False)
z.kind("SelfSubjectRulesReview", "The actions the caller may perform in a namespace (kubectl auth can-i "
       "--list); for showing and hiding actions, never for deciding them.", """
    spec   SelfSubjectRulesReviewSpec @req  The namespace to evaluate.
    status SubjectRulesReviewStatus  Filled in by the server: the rules that apply.
""", group=AUTHZ, version="v1", listed=False)
z.model("ResourceAttributes", "The attributes of a resource request.", """
    namespace   string  Namespace of the action; empty means all namespaces (or none for kinds outside
                        namespaces).
    verb        string  A resource verb: get, list, watch, create, update, delete, ...; * for all.
    group       string  API group of the resource; * for all.
    version     string  API version of the resource; * for all.
    resource    string  The resource, e.g. pods; * for all.
    subresource string  The subresource, e.g. log; empty for none.
    name        string  Name of the object; empty for all.
    tenant      string  Arktos: the tenant of the resource; empty for the review's own tenant.
    fieldSelector FieldSelectorAttributes  Accepted and not evaluated.
    labelSelector LabelSelectorAttributes  Accepted and not evaluated.
""")
z.model("FieldSelectorAttributes", "A field selector of a list or watch.", """
    rawSelector  string  The selector as written.
    requirements []FieldSelectorRequirement @atomic  The selector parsed.
""")
z.model("FieldSelectorRequirement", "One requirement of a field selector.", """
    key      string @req  The field.
    operator string @req  In, NotIn, Exists or DoesNotExist.
    values   []string @atomic  Values for In and NotIn.
""")
z.model("LabelSelectorAttributes", "A label selector of a list or watch.", """
    rawSelector  string  The selector as written.
    requirements []LabelSelectorRequirement @atomic  The selector parsed.
""")
z.model("NonResourceAttributes", "The attributes of a request for a non-resource URL.", """
    path string  The URL path, e.g. /healthz.
    verb string  The HTTP verb in lower case, e.g. get.
""")
z.model("SubjectAccessReviewSpec", "Who asks for what: exactly one of resourceAttributes and "
        "nonResourceAttributes.", """
    resourceAttributes    ResourceAttributes  A resource request.
    nonResourceAttributes NonResourceAttributes  A non-resource request.
    user   string  The user to check.
    groups []string @atomic  Its groups (none unless given).
    extra  {}[]string  Its extra attributes; Arktos: arktos.io/tenant names the user's tenant (system
                       callers only; default the review's tenant).
    uid    string  Its uid.
""")
z.model("SelfSubjectAccessReviewSpec", "What the caller asks for: exactly one of resourceAttributes and "
        "nonResourceAttributes.", """
    resourceAttributes    ResourceAttributes  A resource request.
    nonResourceAttributes NonResourceAttributes  A non-resource request.
""")
z.model("SubjectAccessReviewStatus", "The answer of an access review.", """
    allowed         bool @req  Whether the action would be allowed.
    denied          bool  Whether it is denied outright (Arktos: another tenant's resources).
    reason          string  Why it was allowed or not.
    evaluationError string  Trouble met while deciding.
""")
z.model("SelfSubjectRulesReviewSpec", "Where to list the caller's rules.", """
    namespace string  The namespace, in the caller's tenant.
""")
z.model("SubjectRulesReviewStatus", "The rules of a subject in a namespace; possibly incomplete.", """
    resourceRules    []ResourceRule @req @atomic  Allowed actions on resources.
    nonResourceRules []NonResourceRule @req @atomic  Allowed actions on non-resource URLs.
    incomplete       bool @req  True when some authorizer cannot list its rules for this subject.
    evaluationError  string  Trouble met while listing.
""")
z.model("ResourceRule", "Verbs allowed on some resources.", """
    verbs         []string @req @atomic  Verbs; * for all.
    apiGroups     []string @atomic  API groups; * for all.
    resources     []string @atomic  Resources; * for all, */sub for a subresource of all.
    resourceNames []string @atomic  Names it is limited to; empty for all.
""")
z.model("NonResourceRule", "Verbs allowed on some non-resource URLs.", """
    verbs           []string @req @atomic  Verbs; * for all.
    nonResourceURLs []string @atomic  URLs; a trailing * matches any suffix.
""")

# -- authentication.k8s.io/v1 ------------------------------------------------------------

n.kind("TokenReview", "Checks a bearer token with the API server's authenticators; for system components.",
       """
    spec   TokenReviewSpec @req  The token.
    status TokenReviewStatus  Filled in by the server: whether the token is good, and whose it is.
""", group=AUTHN, version="v1", listed=False)
n.kind("SelfSubjectReview", "Who the caller is, as the API server sees it (kubectl auth whoami).", """
    status SelfSubjectReviewStatus  Filled in by the server: the caller's user information.
""", group=AUTHN, version="v1", listed=False)
n.model("TokenReviewSpec", "A token to check.", """
    token     string  The bearer token.
    audiences []string @atomic  Audiences the caller accepts.
""")
n.model("TokenReviewStatus", "The result of a token review.", """
    authenticated bool  Whether the token is good.
    user          UserInfo  Whose it is; Arktos: extra arktos.io/tenant holds the tenant.
    audiences     []string @atomic  Audiences the token is good for.
    error         string  Why it is not good.
""")
n.model("SelfSubjectReviewStatus", "The caller's user information.", """
    userInfo UserInfo  Name, uid, groups and extra; Arktos: extra arktos.io/tenant holds the tenant.
""")
n.model("UserInfo", "A user as an authenticator sees it.", """
    username string  The user name.
    uid      string  A unique id.
    groups   []string @atomic  Its groups.
    extra    {}[]string  Further attributes.
""")
n.kind("TokenRequest", "Asks for a bound service-account token (POST serviceaccounts/{name}/token).", """
    spec   TokenRequestSpec @req  What the token is for.
    status TokenRequestStatus  Filled in by the server: the token and when it expires.
""", group=AUTHN, version="v1", listed=False)
n.model("TokenRequestSpec", "What a requested token is for.", """
    audiences         []string @req @atomic  Who may accept the token; empty: the API server.
    expirationSeconds int64  Lifetime in seconds (600 at least; default 3600).
    boundObjectRef    BoundObjectReference  The Pod the token dies with.
""")
n.model("BoundObjectReference", "The object a token is bound to.", """
    kind       string  Pod.
    apiVersion string  v1.
    name       string  Its name.
    uid        string  Its uid; must match.
""")
n.model("TokenRequestStatus", "The issued token.", """
    token               string @req  The bearer token.
    expirationTimestamp Time @req  When it expires.
""")

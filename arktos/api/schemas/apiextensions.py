"""CustomResourceDefinition (apiextensions.k8s.io/v1).

The embedded openAPIV3Schema is itself a JSON schema of arbitrary depth, so it
is published as an object that keeps unknown fields: describing it field by
field would add nothing a client checks, and any mistake would reject a valid
CRD.
"""

from __future__ import annotations

from arktos.api.schemas._dsl import Group
from arktos.api.schemas.meta import META

x = Group("io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1", (META,))

x.kind("CustomResourceDefinition", "Adds a new resource to the API, served with the schema given here.", """
    spec   CustomResourceDefinitionSpec    Names, scope and versions of the new resource.
    status CustomResourceDefinitionStatus  Whether the resource is established and which names were accepted.
""", group="apiextensions.k8s.io", version="v1")
x.model("CustomResourceDefinitionSpec", "How a custom resource is named and served.", """
    group    string @req  API group, e.g. stable.example.com; the CRD's name is <plural>.<group>.
    names    CustomResourceDefinitionNames @req  Resource and kind names.
    scope    string @req  Namespaced, or Cluster (in Arktos: one set per tenant).
    versions []CustomResourceDefinitionVersion @req @atomic  Served versions; exactly one is stored.
    conversion CustomResourceConversion  How objects are converted between versions.
    preserveUnknownFields bool  Deprecated; must be false in v1.
""")
x.model("CustomResourceDefinitionNames", "Names of a custom resource.", """
    plural     string @req  Plural resource name used in URLs, lowercase.
    singular   string  Singular name; defaults to the lowercased kind.
    shortNames []string @atomic  Abbreviations for kubectl.
    kind       string @req  Kind in CamelCase.
    listKind   string  Kind of lists; defaults to <kind>List.
    categories []string @atomic  Groupings such as all.
""")
x.model("CustomResourceDefinitionVersion", "One served version of a custom resource.", """
    name       string @req  Version name, e.g. v1 or v1beta1.
    served     bool @req  Whether the version is served.
    storage    bool @req  Whether objects are stored in this version; exactly one version has it.
    deprecated bool    Warn clients that use this version.
    deprecationWarning string  Warning text returned to those clients.
    schema     CustomResourceValidation  Schema that objects of this version must match.
    subresources CustomResourceSubresources  status and scale subresources.
    additionalPrinterColumns []CustomResourceColumnDefinition @atomic  Extra columns kubectl get shows.
    selectableFields []SelectableField @atomic  Fields usable in field selectors.
""")
x.model("CustomResourceValidation", "The schema of a custom resource version.", """
    openAPIV3Schema JSONSchemaProps  Structural OpenAPI v3 schema of the objects.
""")
x.model("JSONSchemaProps", "A JSON schema (OpenAPI v3 subset plus x-kubernetes extensions); any content is "
        "kept and checked by the CRD validation, not here.", """
    type        string  JSON type: object, array, string, integer, number or boolean.
    description string  Text shown by kubectl explain.
    properties  {}object  Schemas of the object's fields.
    required    []string  Fields that must be present.
    items       object  Schema of the array's items.
""", preserve=True)
x.model("CustomResourceSubresources", "Subresources of a custom resource.", """
    status object  Present (as {}) to serve a status subresource.
    scale  CustomResourceSubresourceScale  Serve a scale subresource.
""")
x.model("CustomResourceSubresourceScale", "Where the scale subresource finds its numbers.", """
    specReplicasPath   string @req  JSON path of the wanted replicas, e.g. .spec.replicas.
    statusReplicasPath string @req  JSON path of the observed replicas.
    labelSelectorPath  string  JSON path of the pods' selector in string form.
""")
x.model("CustomResourceColumnDefinition", "An extra column of kubectl get.", """
    name        string @req  Column header.
    type        string @req  integer, number, string, boolean or date.
    format      string  Display format.
    description string  Help text.
    priority    int32   0 shows the column by default; higher only with -o wide.
    jsonPath    string @req  JSON path of the value in each object.
""")
x.model("SelectableField", "A field usable in field selectors.", """
    jsonPath string @req  JSON path of the field.
""")
x.model("CustomResourceConversion", "How objects are converted between versions.", """
    strategy string @req @enum:None|Webhook  None only changes apiVersion.
    webhook  object  Conversion webhook settings.
""")
x.model("CustomResourceDefinitionStatus", "The observed state of a CRD.", """
    conditions     []CustomResourceDefinitionCondition @map:type  Established, NamesAccepted, ...
    acceptedNames  CustomResourceDefinitionNames  Names actually being served.
    storedVersions []string @atomic  Versions objects have ever been stored in.
    observedGeneration int64  Generation the status was computed from.
""")
x.model("CustomResourceDefinitionCondition", "One condition of a CRD.", """
    type               string @req  Condition type.
    status             string @req  True, False or Unknown.
    lastTransitionTime Time    When status last changed.
    reason             string  CamelCase reason.
    message            string  Details.
    observedGeneration int64   Generation the condition was computed from.
""")

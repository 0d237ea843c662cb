"""The mapping: load and validate an Ocean-format mapping file, compile its JQ, map items to entities."""

from opsgenie_export.mapping.jq_engine import (
    CompiledResource,
    Entity,
    ItemResult,
    JqRuntimeError,
    MappingError,
    compile_mapping,
    compile_problems,
    compile_resource,
    evaluate_expression,
    rewrite_single_quotes,
)
from opsgenie_export.mapping.model import (
    KNOWN_KINDS,
    EntityMapping,
    MappingConfig,
    PortMapping,
    Problem,
    ResourceConfig,
    Selector,
    collect_mapping,
    load_mapping,
    parse_mapping,
)
from opsgenie_export.mapping.validate import check_mapping, load_blueprints, static_blueprint, validate_mapping_file

__all__ = [
    "KNOWN_KINDS",
    "CompiledResource",
    "Entity",
    "EntityMapping",
    "ItemResult",
    "JqRuntimeError",
    "MappingConfig",
    "MappingError",
    "PortMapping",
    "Problem",
    "ResourceConfig",
    "Selector",
    "check_mapping",
    "collect_mapping",
    "compile_mapping",
    "compile_problems",
    "compile_resource",
    "evaluate_expression",
    "load_blueprints",
    "load_mapping",
    "parse_mapping",
    "rewrite_single_quotes",
    "static_blueprint",
    "validate_mapping_file",
]

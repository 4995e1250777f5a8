"""Evaluate CloudFormation intrinsic functions against local values.

Only what a SAM template's environment variables and resource names use: Ref, Fn::GetAtt, Fn::Sub,
Fn::Join, Fn::Select, Fn::If, Fn::Not, Fn::Equals, Fn::And, Fn::Or, Condition and the pseudo
parameters. Anything else fails loudly, so a template change never yields a silently wrong value.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final


class TemplateError(ValueError):
    """The template uses something the local stack cannot evaluate or does not have."""


class _NoValue:
    def __repr__(self) -> str:
        return "AWS::NoValue"


# `!Ref AWS::NoValue` removes the property (or list element) that holds it.
NO_VALUE: Final = _NoValue()

_SUB_VARIABLE = re.compile(r"\$\{([^}]*)\}")


@dataclass(frozen=True)
class PhysicalResource:
    """What `Ref` gives for a resource, and its `Fn::GetAtt` attributes."""

    ref: str
    attributes: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Intrinsics:
    template: Mapping[str, Any]
    parameters: Mapping[str, str]
    resources: Mapping[str, PhysicalResource]
    pseudo: Mapping[str, str]

    @classmethod
    def for_stack(
        cls,
        template: Mapping[str, Any],
        parameters: Mapping[str, str],
        resources: Mapping[str, PhysicalResource],
        *,
        stack_name: str,
        region: str,
        account_id: str,
    ) -> Intrinsics:
        pseudo = {
            "AWS::StackName": stack_name,
            "AWS::Region": region,
            "AWS::AccountId": account_id,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackId": f"arn:aws:cloudformation:{region}:{account_id}:stack/{stack_name}/local",
        }
        return cls(template, parameters, resources, pseudo)

    def evaluate(self, value: Any) -> Any:
        """The value with every intrinsic function replaced; may be NO_VALUE."""
        if isinstance(value, list):
            items = [self.evaluate(item) for item in value]
            return [item for item in items if item is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, argument),) = value.items()
            function = self._functions().get(key)
            if function is not None:
                return function(argument)
        evaluated = {key: self.evaluate(item) for key, item in value.items()}
        return {key: item for key, item in evaluated.items() if item is not NO_VALUE}

    def evaluate_str(self, value: Any, where: str) -> str:
        result = self.evaluate(value)
        if isinstance(result, bool):
            return str(result).lower()
        if not isinstance(result, str | int | float):
            raise TemplateError(f"{where}: expected a string, got {result!r}")
        return str(result)

    def condition(self, name: str) -> bool:
        conditions = self.template.get("Conditions", {})
        if name not in conditions:
            raise TemplateError(f"unknown condition {name!r}")
        return self._truth(conditions[name], f"condition {name}")

    def _functions(self) -> dict[str, Any]:
        return {
            "Ref": self._ref,
            "Fn::GetAtt": self._get_att,
            "Fn::Sub": self._sub,
            "Fn::Join": self._join,
            "Fn::Select": self._select,
            "Fn::FindInMap": self._find_in_map,
            "Fn::If": self._if,
            "Fn::Not": lambda arg: not self._truth(_single(arg, "Fn::Not"), "Fn::Not"),
            "Fn::Equals": self._equals,
            "Fn::And": lambda arg: all(self._truth(item, "Fn::And") for item in arg),
            "Fn::Or": lambda arg: any(self._truth(item, "Fn::Or") for item in arg),
            "Condition": self.condition,
        }

    def _ref(self, name: str) -> Any:
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        if name in self.resources:
            return self.resources[name].ref
        raise TemplateError(f"Ref {name}: no parameter, pseudo parameter or local resource of that name")

    def _get_att(self, argument: Any) -> str:
        logical_id, attribute = argument if isinstance(argument, list) else str(argument).split(".", 1)
        resource = self.resources.get(logical_id)
        if resource is None:
            raise TemplateError(f"Fn::GetAtt {logical_id}.{attribute}: no local resource {logical_id}")
        if attribute not in resource.attributes:
            raise TemplateError(f"Fn::GetAtt {logical_id}.{attribute}: the local stack has no such attribute")
        return resource.attributes[attribute]

    def _sub(self, argument: Any) -> str:
        if isinstance(argument, list):
            text, variables = argument[0], {k: self.evaluate(v) for k, v in argument[1].items()}
        else:
            text, variables = argument, {}

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):  # ${!Literal} is how Fn::Sub escapes a literal ${Literal}
                return "${" + name[1:] + "}"
            if name in variables:
                return str(variables[name])
            if "." in name and not name.startswith("AWS::"):
                return self._get_att(name)
            value = self._ref(name)
            if value is NO_VALUE:
                raise TemplateError(f"Fn::Sub: ${{{name}}} is AWS::NoValue")
            return str(value)

        return _SUB_VARIABLE.sub(replace, str(text))

    def _join(self, argument: Any) -> str:
        delimiter, items = argument
        return str(delimiter).join(str(item) for item in self.evaluate(items))

    def _select(self, argument: Any) -> Any:
        index, items = argument
        return self.evaluate(items)[int(self.evaluate(index))]

    def _find_in_map(self, argument: Any) -> Any:
        if not isinstance(argument, list) or len(argument) != 3:
            raise TemplateError(f"Fn::FindInMap takes [map, top key, second key], got {argument!r}")
        name, top, second = (self.evaluate(item) for item in argument)
        try:
            return self.template["Mappings"][name][top][second]
        except (KeyError, TypeError) as exc:
            raise TemplateError(f"Fn::FindInMap {name}.{top}.{second}: no such entry in Mappings") from exc

    def _if(self, argument: Any) -> Any:
        name, when_true, when_false = argument
        return self.evaluate(when_true if self.condition(name) else when_false)

    def _equals(self, argument: Any) -> bool:
        left, right = (self.evaluate(item) for item in argument)
        return bool(str(left) == str(right))

    def _truth(self, value: Any, where: str) -> bool:
        result = self.evaluate(value)
        if not isinstance(result, bool):
            raise TemplateError(f"{where}: expected a condition, got {result!r}")
        return result


def _single(argument: Any, where: str) -> Any:
    if not isinstance(argument, list) or len(argument) != 1:
        raise TemplateError(f"{where} takes a list of one condition, got {argument!r}")
    return argument[0]

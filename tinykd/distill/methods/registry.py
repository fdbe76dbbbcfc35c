"""The registry of distillation methods: name -> build recipe (and name -> method class).

`tinykd.distill.methods` fills it from its one table; `register_method` adds a method from
outside the package (a plugin, a test). Everything that lists or validates methods (the
configuration, the CLI's choices, sweeps) reads it, in registration order.
"""

from __future__ import annotations

import inspect

from ...errors import TinykdError
from .base import DistillationMethod
from .recipe import BuildRecipe, check_recipe

#: name -> the method's build recipe, in registration order.
RECIPES: dict[str, BuildRecipe] = {}
#: name -> the method's loss class (DistillationMethod subclass), in registration order.
METHODS: dict[str, type[DistillationMethod]] = {}


def register_method(recipe: BuildRecipe, *, replace: bool = False) -> BuildRecipe:
    """Make a method known to get_method, the configuration and the build. Registering a name
    twice is an error unless `replace` (then the new recipe takes the old one's place)."""
    check_recipe(recipe)
    if recipe.name in RECIPES and not replace:
        raise TinykdError(
            f"A distillation method named '{recipe.name}' is registered already. Choose another name, "
            "or pass replace=True to register_method to replace it."
        )
    RECIPES[recipe.name] = recipe
    METHODS[recipe.name] = recipe.method
    return recipe


def unregister_method(name: str) -> None:
    """Forget a method registered with register_method (for tests and plugins that clean up)."""
    RECIPES.pop(name, None)
    METHODS.pop(name, None)


def get_recipe(name: str) -> BuildRecipe:
    if name not in RECIPES:
        raise TinykdError(
            f"Unknown distillation method '{name}'; choose one of {', '.join(RECIPES)} (--method or [distill] method)."
        )
    return RECIPES[name]


def single_teacher_methods() -> tuple[str, ...]:
    """Methods that distil one student from one teacher at (T, alpha)."""
    return tuple(name for name, recipe in RECIPES.items() if recipe.single_teacher)


def searchable_methods() -> tuple[str, ...]:
    """Methods that distil one student at (T, alpha) from models fixed before it trains (the teacher,
    and the ensemble's members or the specialists): what a T/alpha search, a sweep and fit train."""
    return tuple(name for name, recipe in RECIPES.items() if recipe.searchable)


def get_method(
    name: str, temperature: float | None = None, alpha: float | None = None, **options
) -> DistillationMethod:
    """Build the method `name`; temperature/alpha left as None take the method's own defaults."""
    if name not in METHODS:
        raise TinykdError(f"Unknown distillation method '{name}'. Choose one of: {', '.join(METHODS)}.")
    cls = METHODS[name]
    accepted = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise TinykdError(
            f"The '{name}' distillation method has no option {', '.join(unknown)}; its options are: "
            f"{', '.join(accepted)}."
        )
    if temperature is not None:
        options["temperature"] = temperature
    if alpha is not None:
        options["alpha"] = alpha
    return cls(**options)

"""Add a member to peft's ``PeftType`` enum: the one place where AFLoRA touches peft's internals.

``peft.utils.register_peft_method`` only accepts names that are already members of ``PeftType``
(a ``str`` Enum closed at class creation), and peft looks a saved adapter's ``"peft_type"`` up by
value (``PeftType("AFLORA")``, ``PEFT_TYPE_TO_CONFIG_MAPPING["AFLORA"]``). Python's ``enum`` has no
public way to add a member, so this module does by hand what ``enum`` does for each member while it
builds the class (Python 3.11-3.13 ``enum._proto_member.__set_name__``): create the instance, give it
its ``_name_``/``_value_``/``_sort_order_``, and enter it in the three lookup tables
(``_member_names_`` for iteration, ``_member_map_`` for ``PeftType[name]``, ``_value2member_map_``
for ``PeftType(value)``) and as a class attribute. The result behaves like a built-in member:
``PeftType.AFLORA``, ``PeftType("AFLORA")``, ``PeftType["AFLORA"]``, ``"AFLORA" in list(PeftType)``,
equality with the plain string, pickling. ``tests/test_aflora_registration.py`` checks each of these.
"""

from __future__ import annotations

from peft.utils import PeftType


def add_peft_type(name: str) -> PeftType:
    """Return ``PeftType[name]``, creating the member (value = name) if peft does not have it.

    Idempotent: a second call, or a future peft release that ships the member, returns the existing
    one unchanged.
    """
    if not name.isidentifier() or name.upper() != name:
        raise ValueError(f"PeftType member name must be an upper-case identifier, got {name!r}")
    existing = PeftType.__members__.get(name)
    if existing is not None:
        return existing
    if name in PeftType._value2member_map_:
        raise ValueError(f"PeftType already has a member with value {name!r} under another name")

    member = str.__new__(PeftType, name)
    member._name_ = name
    member._value_ = name
    member.__objclass__ = PeftType
    member._sort_order_ = len(PeftType._member_names_)
    # EnumType.__setattr__ only refuses names already in _member_map_, so set the attribute first.
    setattr(PeftType, name, member)
    PeftType._member_names_.append(name)
    PeftType._member_map_[name] = member
    PeftType._value2member_map_[name] = member
    return member

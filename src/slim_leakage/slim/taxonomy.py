"""The SLIM taxonomy: entities grouped into families of look-alikes that leak into each other.

Each entity carries its family, its broad category (``animal``, ``produce``, ``object``) and one
sentence describing its distinguishing look. The entity-description baseline appends that
sentence to prompts, and the judge uses it to know what a typical entity looks like.

A family also names a ``setting`` (``land``, ``water``, ``air``, ``table``, ``street``, ``stage``,
``room``): templates declare the settings they suit, so a whale is never put in a barn. ``links``
add look-alike pairs across families (a bat and an owl). The builder takes any
:class:`Taxonomy`, so other vocabularies (the toy world's) reuse it unchanged.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Sequence

from ..errors import DatasetError, UnknownNameError, did_you_mean

_NAME_RE = re.compile(r"^[a-z][a-z0-9' -]*[a-z0-9]$")


@dataclasses.dataclass(frozen=True)
class Entity:
    """One thing a prompt can name.

    Attributes:
        name: The lowercase name, exactly as it appears in prompts.
        family: The look-alike family it belongs to.
        description: One sentence on its distinguishing look.
        category: ``animal``, ``produce`` or ``object`` (or a vocabulary's own category).
        article: The indefinite article used before the name (``a`` or ``an``).
    """

    name: str
    family: str
    description: str
    category: str
    article: str = "a"


@dataclasses.dataclass(frozen=True)
class Family:
    """A group of look-alike entities.

    Attributes:
        name: Lowercase-kebab family name (``big-cats``).
        category: The category of all its entities.
        setting: The kind of scene its entities belong in; templates declare the settings they suit.
        entities: The members, in a fixed order.
    """

    name: str
    category: str
    setting: str
    entities: tuple[Entity, ...]


def _article(name: str) -> str:
    return "an" if name[0] in "aeiou" else "a"


class Taxonomy:
    """A validated set of families (and optional cross-family look-alike links).

    Args:
        name: What the vocabulary is called (recorded in the data files).
        families: The families; entity names must be unique across all of them.
        links: Extra look-alike pairs of entities from different families.

    Raises:
        DatasetError: If a name is malformed or repeated, a description is empty, or a link
            names an unknown entity or two entities of the same family.
    """

    def __init__(
        self, name: str, families: Sequence[Family], links: Iterable[tuple[str, str]] = ()
    ) -> None:
        self.name = name
        self.families: tuple[Family, ...] = tuple(families)
        self._entities: dict[str, Entity] = {}
        self._families: dict[str, Family] = {}
        for family in self.families:
            if family.name in self._families:
                raise DatasetError(
                    f"Taxonomy {name!r} has two families named {family.name!r}.",
                    hint="Give every family a unique name.",
                )
            self._families[family.name] = family
            for entity in family.entities:
                self._check_entity(entity, family)
                self._entities[entity.name] = entity
        self.links: tuple[tuple[str, str], ...] = tuple(tuple(link) for link in links)  # type: ignore[misc]
        for a, b in self.links:
            for n in (a, b):
                if n not in self._entities:
                    raise DatasetError(
                        f"Taxonomy {name!r}: the link ({a!r}, {b!r}) names the unknown entity {n!r}.",
                        hint="Link only entities that belong to a family.",
                    )
            if self._entities[a].family == self._entities[b].family:
                raise DatasetError(
                    f"Taxonomy {name!r}: the link ({a!r}, {b!r}) joins two members of "
                    f"{self._entities[a].family!r}; same-family pairs are made anyway.",
                    hint="Use links only across families.",
                )

    def _check_entity(self, entity: Entity, family: Family) -> None:
        where = f"Taxonomy {self.name!r}, family {family.name!r}"
        if not _NAME_RE.match(entity.name):
            raise DatasetError(
                f"{where}: entity name {entity.name!r} is not lowercase words.",
                hint="Use lowercase letters, digits, spaces, hyphens or apostrophes.",
            )
        if entity.name in self._entities:
            raise DatasetError(
                f"{where}: entity {entity.name!r} is already in family "
                f"{self._entities[entity.name].family!r}.",
                hint="An entity belongs to exactly one family.",
            )
        if entity.family != family.name or entity.category != family.category:
            raise DatasetError(
                f"{where}: entity {entity.name!r} says family {entity.family!r} and category "
                f"{entity.category!r}, but sits in {family.name!r} ({family.category!r}).",
                hint="Build entities with make_family(), which fills these in.",
            )
        if not entity.description.strip():
            raise DatasetError(
                f"{where}: entity {entity.name!r} has no description.",
                hint="Describe its distinguishing look in one sentence.",
            )

    @property
    def entities(self) -> list[Entity]:
        """Every entity, family by family."""
        return list(self._entities.values())

    def family(self, name: str) -> Family:
        """The family called ``name``.

        Raises:
            UnknownNameError: With a did-you-mean and the available families.
        """
        try:
            return self._families[name]
        except KeyError:
            raise UnknownNameError(
                f"Unknown family {name!r} in taxonomy {self.name!r}.{did_you_mean(name, self._families)}",
                hint=f"Families: {', '.join(self._families)}.",
            ) from None

    def get(self, name: str) -> Entity:
        """The entity called ``name`` (case and surrounding spaces are ignored).

        Raises:
            UnknownNameError: With a did-you-mean when the name is not in the taxonomy.
        """
        key = " ".join(name.lower().split())
        try:
            return self._entities[key]
        except KeyError:
            raise UnknownNameError(
                f"Unknown entity {name!r} in taxonomy {self.name!r}.{did_you_mean(key, self._entities)}",
                hint=(
                    f"The taxonomy has {len(self._entities)} entities; list them with "
                    "`slim_leakage.slim.taxonomy.SLIM_TAXONOMY.entities`."
                ),
            ) from None

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and " ".join(name.lower().split()) in self._entities

    def __len__(self) -> int:
        return len(self._entities)


def make_family(
    name: str, category: str, setting: str, members: Sequence[tuple[str, str]]
) -> Family:
    """Build a :class:`Family` from ``(entity name, description)`` pairs.

    Args:
        name: Family name.
        category: Category shared by the members.
        setting: The kind of scene the members belong in.
        members: ``(name, one-sentence description)`` per entity.
    """
    return Family(
        name=name,
        category=category,
        setting=setting,
        entities=tuple(
            Entity(
                name=entity,
                family=name,
                description=description,
                category=category,
                article=_article(entity),
            )
            for entity, description in members
        ),
    )


# fmt: off
_ANIMALS = [
    make_family("big-cats", "animal", "land", [
        ("cat", "A small domestic cat with a short muzzle, upright pointed ears and soft fur in plain or tabby colours."),
        ("lion", "A large tawny cat with a plain coat, a tufted tail and, in males, a thick dark mane."),
        ("tiger", "A large orange cat with bold black vertical stripes and a white face and belly."),
        ("leopard", "A muscular golden cat covered in dark rosettes, with a long spotted tail."),
        ("cheetah", "A slender, long-legged cat with solid black spots and black tear lines running from its eyes."),
        ("jaguar", "A stocky, heavy-jawed golden cat whose large rosettes have dark spots inside them."),
        ("lynx", "A short-tailed wild cat with long black ear tufts and a ruff of fur around its face."),
    ]),
    make_family("canids", "animal", "land", [
        ("dog", "A domestic dog with floppy or upright ears, a friendly face and a coat that varies by breed."),
        ("wolf", "A large grey wild canine with a broad head, thick fur and a bushy, low-held tail."),
        ("fox", "A small canine with russet-orange fur, a white chest, black legs and a big white-tipped tail."),
        ("coyote", "A lean grey-brown canine with a narrow muzzle, large ears and a black-tipped tail."),
        ("jackal", "A slim golden canine with long legs, pointed ears and a dark saddle on its back."),
        ("dingo", "A medium wild dog with a short ginger coat, white feet and an upright bushy tail."),
    ]),
    make_family("bovids-equids", "animal", "land", [
        ("cow", "A heavy cattle animal with short horns, a broad muzzle, an udder and black-and-white or brown patches."),
        ("horse", "A tall, slender-legged animal with a long face, a flowing mane and a long hair tail."),
        ("donkey", "A small grey equine with very long ears, a pale muzzle and a short upright mane."),
        ("zebra", "A horse-like animal covered in bold black and white stripes with a short upright mane."),
        ("mule", "A sturdy brown equine with a horse-like body, long donkey ears and a thin tail."),
        ("yak", "A massive bovine with a shaggy dark coat reaching the ground and wide curved horns."),
        ("bison", "A huge brown bovine with a humped shoulder, a woolly head and short curved horns."),
    ]),
    make_family("deer", "animal", "land", [
        ("deer", "A graceful brown animal with slender legs, a white tail patch and, in males, branching antlers."),
        ("moose", "A very large dark deer with a long drooping snout, a throat dewlap and broad flat antlers."),
        ("elk", "A large tan deer with a darker neck and tall, many-pointed antlers."),
        ("reindeer", "A stocky grey-white deer with a thick coat, broad hooves and sweeping antlers."),
        ("antelope", "A light-bodied tan grazer with straight ringed horns and a white underside."),
        ("gazelle", "A small fawn-coloured grazer with a dark side stripe and thin curved horns."),
    ]),
    make_family("bears", "animal", "land", [
        ("brown bear", "A massive brown bear with a shoulder hump, a dished face and long claws."),
        ("polar bear", "A huge bear with creamy white fur, a long neck and a black nose."),
        ("panda", "A round black-and-white bear with black eye patches, ears and legs."),
        ("koala", "A small grey tree-dweller with fluffy round ears, a large black nose and no tail."),
        ("sloth", "A shaggy brown tree-dweller with long curved claws and a dark eye mask on a pale face."),
    ]),
    make_family("large-herbivores", "animal", "land", [
        ("elephant", "A huge grey animal with a long trunk, large fan-shaped ears and ivory tusks."),
        ("rhinoceros", "A massive grey animal with thick folded skin and one or two horns on its snout."),
        ("hippopotamus", "A barrel-shaped grey-pink animal with a huge mouth, tiny ears and short legs."),
        ("tapir", "A stout animal with a short flexible snout and a black body with a white saddle."),
        ("warthog", "A grey wild pig with a flat face, warty bumps, curved tusks and a thin tufted tail."),
    ]),
    make_family("primates", "animal", "land", [
        ("monkey", "A small long-tailed primate with a hairless face and nimble hands."),
        ("chimpanzee", "A black-furred ape with large ears, a pale wrinkled face and no tail."),
        ("gorilla", "A huge black ape with a silver back, a heavy brow ridge and a broad chest."),
        ("orangutan", "A long-armed ape with shaggy reddish-orange hair and wide cheek pads."),
        ("baboon", "A dog-faced monkey with a long muzzle, olive fur and a bare rump."),
        ("lemur", "A slim primate with large amber eyes, a fox-like face and a ringed black-and-white tail."),
    ]),
    make_family("rodents", "animal", "land", [
        ("mouse", "A tiny grey rodent with big round ears, a pointed nose and a thin tail."),
        ("rat", "A brown rodent larger than a mouse, with a blunt snout and a long scaly tail."),
        ("hamster", "A chubby golden rodent with stuffed cheek pouches and almost no tail."),
        ("squirrel", "A red or grey rodent with tufted ears and a big bushy tail curled over its back."),
        ("chipmunk", "A small striped rodent with dark and light stripes down its back and face."),
        ("guinea pig", "A tailless round rodent with a blunt face and patches of brown, white and black."),
    ]),
    make_family("marine-mammals", "animal", "water", [
        ("dolphin", "A sleek grey sea mammal with a beak-like snout, a curved dorsal fin and a smiling mouth."),
        ("whale", "An enormous blue-grey sea mammal with a broad head, a blowhole and a wide tail fluke."),
        ("orca", "A black sea mammal with a white belly, white eye patches and a tall dorsal fin."),
        ("seal", "A spotted grey sea mammal with a round head, no ear flaps and short flippers."),
        ("sea lion", "A brown sea mammal with small ear flaps, a long neck and large front flippers."),
        ("walrus", "A huge wrinkled brown sea mammal with long ivory tusks and a bristly moustache."),
        ("manatee", "A slow grey sea mammal with a wrinkled whiskered snout and a round paddle tail."),
    ]),
    make_family("bats", "animal", "air", [
        ("bat", "A small dark furry flyer with leathery membrane wings, big ears and a pug nose."),
    ]),
    make_family("birds-of-prey", "animal", "air", [
        ("eagle", "A large brown raptor with a white head, a hooked yellow beak and broad wings."),
        ("hawk", "A medium raptor with a rusty tail, a barred pale chest and a short hooked beak."),
        ("falcon", "A sleek raptor with pointed wings, a slate-grey back and dark moustache marks."),
        ("owl", "A round-headed bird with a flat facial disc, large forward-facing eyes and soft plumage."),
        ("vulture", "A large dark bird with a bare wrinkled head, a ruff of feathers and a hooked beak."),
        ("osprey", "A raptor with a white underside, a dark eye stripe and long narrow wings."),
    ]),
    make_family("songbirds", "animal", "air", [
        ("robin", "A small plump bird with a bright orange-red breast and a brown back."),
        ("nightingale", "A plain russet-brown songbird with a pale belly and a reddish tail."),
        ("sparrow", "A small brown-streaked bird with a grey crown and a short conical beak."),
        ("finch", "A small seed-eater with a stout beak and red or yellow patches on its head."),
        ("canary", "A small bright yellow songbird with a short pale beak."),
        ("wren", "A tiny round brown bird with a short upturned tail and a fine barred pattern."),
    ]),
    make_family("corvids", "animal", "air", [
        ("crow", "A glossy all-black bird with a stout black beak and a square tail."),
        ("raven", "A large black bird with a shaggy throat, a heavy beak and a wedge-shaped tail."),
        ("magpie", "A black-and-white bird with an iridescent blue-green sheen and a very long tail."),
        ("blue jay", "A crested bird with bright blue wings and back, a white face and a black necklace."),
        ("jackdaw", "A small black bird with a grey nape and striking pale eyes."),
    ]),
    make_family("parrots", "animal", "air", [
        ("parrot", "A bright green bird with a strong curved beak and red or yellow touches on its wings."),
        ("cockatoo", "A white parrot with a tall yellow crest and a dark curved beak."),
        ("macaw", "A large parrot with a long tail, a bare white face and vivid red, blue and yellow feathers."),
        ("toucan", "A black bird with a yellow throat and an enormous colourful banana-shaped beak."),
        ("parakeet", "A small slim parrot with a long pointed tail and green or blue barred plumage."),
        ("lovebird", "A small stocky parrot with a green body, an orange-red face and a short tail."),
    ]),
    make_family("waterbirds", "animal", "water", [
        ("duck", "A waterbird with a flat rounded bill, webbed feet and a green head in males."),
        ("goose", "A large waterbird with a long neck, a grey-brown body and an orange bill."),
        ("swan", "A large white waterbird with a long curved neck and an orange bill with a black knob."),
        ("pelican", "A big white waterbird with a huge bill and a stretchy throat pouch."),
        ("flamingo", "A pink wading bird with very long thin legs and a bent black-tipped bill."),
        ("heron", "A tall grey wading bird with a dagger-like bill, long legs and a black head plume."),
    ]),
    make_family("insects", "animal", "air", [
        ("bee", "A fuzzy insect with black and golden-yellow bands and translucent wings."),
        ("wasp", "A smooth narrow-waisted insect with bright yellow and black bands."),
        ("hornet", "A large wasp with a reddish-brown head and yellow-and-brown banded abdomen."),
        ("butterfly", "A slender insect with large brightly coloured patterned wings and clubbed antennae."),
        ("moth", "A stout furry insect with dull brown wings folded flat and feathery antennae."),
        ("dragonfly", "A long thin insect with two pairs of clear veined wings and huge compound eyes."),
        ("ladybug", "A small round beetle with a shiny red shell marked with black spots."),
        ("beetle", "A hard-shelled insect with a glossy dark or metallic back and short legs."),
    ]),
    make_family("reptiles", "animal", "land", [
        ("crocodile", "A long armoured reptile with a narrow pointed snout and teeth showing when its mouth is shut."),
        ("alligator", "A dark armoured reptile with a broad rounded snout and hidden lower teeth."),
        ("lizard", "A small slender reptile with scaly skin, four splayed legs and a long tail."),
        ("iguana", "A large green lizard with a spiny crest along its back and a throat dewlap."),
        ("chameleon", "A lizard with turret-like swivelling eyes, a curled tail and colour-shifting skin."),
        ("tortoise", "A slow land reptile with a high domed shell and thick scaly legs."),
    ]),
]

_PRODUCE = [
    make_family("citrus", "produce", "table", [
        ("orange", "A round citrus fruit with a bright orange dimpled peel."),
        ("lemon", "An oval yellow citrus fruit with a pointed tip and glossy peel."),
        ("lime", "A small round green citrus fruit with a smooth thin peel."),
        ("grapefruit", "A large round citrus fruit with a yellow-pink peel and ruby flesh."),
        ("tangerine", "A small flattened citrus fruit with a loose deep-orange peel."),
        ("kumquat", "A tiny oval orange citrus fruit eaten whole, peel and all."),
    ]),
    make_family("berries", "produce", "table", [
        ("strawberry", "A red heart-shaped berry dotted with tiny yellow seeds and topped by green leaves."),
        ("raspberry", "A soft red berry made of small round drupelets with a hollow core."),
        ("blueberry", "A small round dusty-blue berry with a star-shaped crown."),
        ("blackberry", "A glossy black berry made of clustered drupelets."),
        ("cranberry", "A small hard bright-red berry with a waxy skin."),
        ("gooseberry", "A round translucent green berry with pale stripes running along it."),
    ]),
    make_family("stone-fruit", "produce", "table", [
        ("peach", "A round fuzzy fruit with a yellow-and-red blush and a seam down one side."),
        ("plum", "A smooth oval fruit with a deep purple skin and a pale bloom."),
        ("apricot", "A small velvety orange fruit with a faint seam."),
        ("cherry", "A small glossy dark-red round fruit on a long thin stem."),
        ("nectarine", "A round smooth-skinned fruit with a red and yellow skin and no fuzz."),
    ]),
    make_family("round-fruit", "produce", "table", [
        ("apple", "A round fruit with a glossy red or green skin and a short stem in a dimple."),
        ("pear", "A bell-shaped fruit with a thin green-yellow skin and a narrow neck."),
        ("quince", "A lumpy golden-yellow fruit with a fuzzy skin, shaped like a large pear."),
        ("pomegranate", "A round red fruit with a leathery skin and a crown-shaped top."),
        ("fig", "A small teardrop-shaped fruit with a purple skin and a pink seedy interior."),
        ("persimmon", "A glossy orange fruit shaped like a flattened tomato with a green leafy cap."),
    ]),
    make_family("gourds", "produce", "table", [
        ("pumpkin", "A large round orange gourd with deep vertical ribs and a thick stem."),
        ("zucchini", "A long straight green squash with a smooth glossy skin."),
        ("cucumber", "A long green vegetable with a bumpy dark skin and rounded ends."),
        ("watermelon", "A huge oval melon with a striped dark-green rind and red flesh."),
        ("melon", "A round melon with a netted beige rind and orange flesh."),
        ("butternut squash", "A bell-shaped beige squash with a long neck and a bulb at the end."),
    ]),
    make_family("nightshades", "produce", "table", [
        ("tomato", "A round glossy red fruit with a green star-shaped stem cap."),
        ("eggplant", "An elongated vegetable with a shiny deep-purple skin and a green cap."),
        ("bell pepper", "A blocky hollow pepper with a glossy red, yellow or green skin and three or four lobes."),
        ("chili pepper", "A thin tapering hot pepper with a shiny red skin and a curved tip."),
        ("potato", "A lumpy brown tuber with a dusty skin and small eyes."),
        ("tomatillo", "A small green fruit wrapped in a papery husk."),
    ]),
    make_family("root-vegetables", "produce", "table", [
        ("carrot", "A long tapering orange root with feathery green leaves."),
        ("radish", "A small round root with a bright red skin, a white tip and green leaves."),
        ("beet", "A round dark-magenta root with red-veined leaves."),
        ("turnip", "A round root that is white below and purple on top."),
        ("parsnip", "A long cream-coloured tapering root, like a pale carrot."),
        ("yam", "A long rough-skinned tuber with a dark brown bark-like skin."),
    ]),
    make_family("brassicas", "produce", "table", [
        ("broccoli", "A green vegetable with a thick stalk and a tree-like head of tight florets."),
        ("cauliflower", "A compact white head of curds wrapped in green leaves."),
        ("cabbage", "A dense round head of tightly layered smooth green leaves."),
        ("brussels sprout", "A tiny green cabbage-like bud with layered leaves."),
        ("romanesco", "A lime-green head made of spiralling pointed fractal cones."),
        ("kohlrabi", "A round pale-green or purple bulb with stems sprouting from its top."),
    ]),
    make_family("tropical-fruit", "produce", "table", [
        ("banana", "A long curved fruit with a smooth yellow peel and a dark stem end."),
        ("plantain", "A larger, straighter banana-like fruit with a thick green-to-black peel."),
        ("pineapple", "A large oval fruit with a spiky crown of leaves and a diamond-patterned golden skin."),
        ("mango", "An oval fruit with a smooth green, yellow and red skin and a slight beak."),
        ("papaya", "A long pear-shaped fruit with a yellow-green skin and orange flesh with black seeds."),
        ("coconut", "A round hard nut with a hairy brown husk and three eyes on one end."),
    ]),
]

_OBJECTS = [
    make_family("vehicles", "object", "street", [
        ("car", "A four-door passenger vehicle with a low body, a windscreen and four wheels."),
        ("truck", "A heavy vehicle with a tall cab and a long cargo box or flatbed behind it."),
        ("bus", "A long boxy passenger vehicle with rows of windows and a door at the front."),
        ("van", "A boxy vehicle with a short bonnet, sliding side door and a tall enclosed back."),
        ("jeep", "A rugged open-topped off-road vehicle with a flat bonnet and a spare wheel on the back."),
        ("tractor", "A farm vehicle with huge treaded rear wheels, small front wheels and an exhaust stack."),
    ]),
    make_family("string-instruments", "object", "stage", [
        ("guitar", "A six-string instrument with a figure-eight wooden body, a round sound hole and a long fretted neck."),
        ("violin", "A small wooden instrument with f-shaped holes, four strings and a scroll, played with a bow under the chin."),
        ("cello", "A large wooden bowed instrument with f-holes that stands on an endpin between the knees."),
        ("banjo", "A stringed instrument with a round drum-like body covered by a pale skin head."),
        ("ukulele", "A tiny four-string guitar-shaped instrument with a short neck."),
        ("mandolin", "A small teardrop-shaped stringed instrument with paired strings and a short neck."),
        ("harp", "A tall triangular frame instrument with many vertical strings."),
    ]),
    make_family("seating", "object", "room", [
        ("chair", "A single seat with four legs, a flat seat and an upright back."),
        ("armchair", "A deep upholstered seat with padded armrests and a cushioned back."),
        ("sofa", "A long upholstered seat for several people with cushions and armrests."),
        ("stool", "A backless seat on three or four tall legs."),
        ("bench", "A long narrow backless or slatted seat for several people."),
        ("ottoman", "A low padded footrest with no back or arms."),
    ]),
]
# fmt: on

#: Cross-family look-alike pairs, most of them the published examples (a bat and an owl).
_LINKS = [
    ("bat", "owl"),
    ("bat", "eagle"),
    ("elephant", "moose"),
    ("strawberry", "radish"),
    ("cherry", "radish"),
    ("strawberry", "cherry"),
    ("eggplant", "plum"),
    ("fig", "plum"),
    ("tomato", "persimmon"),
]

#: The taxonomy SLIM is built from.
SLIM_TAXONOMY = Taxonomy("slim", [*_ANIMALS, *_PRODUCE, *_OBJECTS], links=_LINKS)


def get_entity(name: str) -> Entity:
    """The SLIM entity called ``name`` (name, family, description, category).

    Raises:
        UnknownNameError: If the name is not in the SLIM taxonomy (with a did-you-mean).
    """
    return SLIM_TAXONOMY.get(name)


def entity_description(name: str) -> str:
    """The one-sentence description of the SLIM entity ``name``'s distinguishing look.

    Raises:
        UnknownNameError: If the name is not in the SLIM taxonomy (with a did-you-mean).
    """
    return SLIM_TAXONOMY.get(name).description


__all__ = [
    "SLIM_TAXONOMY",
    "Entity",
    "Family",
    "Taxonomy",
    "entity_description",
    "get_entity",
    "make_family",
]

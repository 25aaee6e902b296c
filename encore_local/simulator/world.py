"""The simulated world's fixed vocabulary: genres with sub-styles and their sound, moods, regions, words.

Everything here is a documented generative parameter (docs/simulator.md); nothing is tuned to a model.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Style:
    """A sub-style: the mean of its audio features (drawn per track with noise) and words its lyrics use."""

    name: str
    danceability: float
    energy: float
    valence: float
    acousticness: float
    instrumentalness: float
    speechiness: float
    tempo: float
    loudness: float
    minutes: float  # typical duration
    words: tuple[str, ...]


@dataclass(frozen=True)
class Genre:
    name: str
    share: float  # share of the catalog and of the global taste prior
    explicit_rate: float
    words: tuple[str, ...]
    styles: tuple[Style, ...]


def _s(name: str, d: float, e: float, v: float, a: float, i: float, sp: float, t: float, lo: float, m: float,
       words: str) -> Style:  # fmt: skip
    return Style(name, d, e, v, a, i, sp, t, lo, m, tuple(words.split()))


GENRES: tuple[Genre, ...] = (
    Genre(
        "pop",
        0.17,
        0.15,
        (
            "heart",
            "love",
            "tonight",
            "dance",
            "baby",
            "forever",
            "dream",
            "stars",
            "golden",
            "shine",
            "young",
            "summer",
            "kiss",
            "crazy",
            "fire",
            "radio",
            "lights",
            "together",
            "feeling",
            "body",
        ),
        (
            _s("dance-pop", 0.75, 0.78, 0.68, 0.12, 0.01, 0.06, 120, -5.5, 3.4, "floor club glitter move"),
            _s("synth-pop", 0.66, 0.70, 0.55, 0.10, 0.08, 0.05, 115, -6.5, 3.8, "neon synth electric chrome"),
            _s("indie-pop", 0.58, 0.55, 0.58, 0.35, 0.05, 0.04, 110, -7.5, 3.5, "bedroom polaroid bicycle ukulele"),
        ),
    ),
    Genre(
        "rock",
        0.10,
        0.10,
        (
            "road",
            "guitar",
            "loud",
            "wild",
            "freedom",
            "highway",
            "engine",
            "thunder",
            "rebel",
            "storm",
            "stone",
            "city",
            "night",
            "run",
            "burn",
            "edge",
            "scream",
            "alive",
            "wire",
            "shout",
        ),
        (
            _s("alt-rock", 0.48, 0.75, 0.40, 0.08, 0.04, 0.05, 125, -6.0, 3.9, "static anthem distortion garage"),
            _s("classic-rock", 0.50, 0.72, 0.55, 0.15, 0.05, 0.04, 120, -8.5, 4.6, "vinyl jukebox cadillac boogie"),
            _s("punk", 0.42, 0.92, 0.45, 0.02, 0.02, 0.08, 165, -4.5, 2.4, "riot spit anarchy safety-pin"),
        ),
    ),
    Genre(
        "hip-hop",
        0.13,
        0.65,
        (
            "street",
            "flow",
            "cash",
            "block",
            "hustle",
            "crew",
            "mic",
            "rhyme",
            "money",
            "game",
            "real",
            "grind",
            "boss",
            "hood",
            "chain",
            "dollar",
            "track",
            "verse",
            "beat",
            "spit",
        ),
        (
            _s("trap", 0.78, 0.65, 0.38, 0.10, 0.02, 0.25, 140, -6.0, 3.0, "808 drip trap sauce"),
            _s("boom-bap", 0.72, 0.68, 0.55, 0.15, 0.02, 0.32, 92, -7.0, 3.6, "sample cypher breakbeat vinyl"),
            _s("lo-fi-hip-hop", 0.68, 0.35, 0.50, 0.55, 0.75, 0.10, 85, -11.0, 2.5, "rain coffee tape study"),
        ),
    ),
    Genre(
        "electronic",
        0.10,
        0.05,
        (
            "pulse",
            "rave",
            "signal",
            "bass",
            "drop",
            "circuit",
            "laser",
            "frequency",
            "machine",
            "strobe",
            "wave",
            "system",
            "loop",
            "echo",
            "voltage",
            "orbit",
            "night",
            "sweat",
        ),
        (
            _s("house", 0.80, 0.80, 0.62, 0.05, 0.55, 0.06, 124, -6.5, 6.0, "warehouse groove jack disco"),
            _s("techno", 0.70, 0.88, 0.28, 0.03, 0.80, 0.05, 132, -7.0, 6.5, "berlin steel industrial dark"),
            _s("drum-and-bass", 0.55, 0.93, 0.40, 0.02, 0.50, 0.07, 174, -5.0, 5.0, "jungle amen roller breakneck"),
        ),
    ),
    Genre(
        "r-n-b",
        0.07,
        0.30,
        (
            "baby",
            "touch",
            "slow",
            "body",
            "honey",
            "silk",
            "velvet",
            "desire",
            "tonight",
            "close",
            "lover",
            "skin",
            "whisper",
            "sugar",
            "soul",
            "babe",
            "closer",
        ),
        (
            _s("neo-soul", 0.62, 0.45, 0.55, 0.40, 0.05, 0.08, 90, -8.0, 4.2, "incense groove mahogany soulful"),
            _s("contemporary-r-n-b", 0.70, 0.55, 0.50, 0.18, 0.02, 0.10, 100, -6.5, 3.6, "falsetto bedroom satin vibe"),
        ),
    ),
    Genre(
        "jazz",
        0.04,
        0.00,
        (
            "blue",
            "smoke",
            "midnight",
            "swing",
            "saxophone",
            "trumpet",
            "bar",
            "cool",
            "moon",
            "piano",
            "brush",
            "cigarette",
            "lounge",
            "rhythm",
        ),
        (
            _s("bebop", 0.52, 0.55, 0.60, 0.80, 0.70, 0.05, 180, -12.0, 5.5, "changes bird solo tempo"),
            _s("smooth-jazz", 0.60, 0.35, 0.62, 0.65, 0.65, 0.04, 95, -11.0, 4.8, "sunset breeze satin lounge"),
            _s("jazz-fusion", 0.55, 0.62, 0.52, 0.40, 0.72, 0.04, 120, -10.0, 6.2, "odd-meter fusion fretless modal"),
        ),
    ),
    Genre(
        "classical",
        0.04,
        0.00,
        (
            "sonata",
            "symphony",
            "prelude",
            "allegro",
            "adagio",
            "cello",
            "violin",
            "orchestra",
            "opus",
            "movement",
            "concerto",
            "nocturne",
            "fugue",
        ),
        (
            _s(
                "baroque", 0.35, 0.30, 0.55, 0.95, 0.92, 0.04, 100, -18.0, 5.0, "harpsichord counterpoint cantata organ"
            ),
            _s("romantic", 0.25, 0.25, 0.35, 0.96, 0.90, 0.04, 85, -20.0, 8.0, "longing reverie waltz rhapsody"),
            _s("minimalism", 0.30, 0.22, 0.45, 0.92, 0.94, 0.04, 110, -19.0, 9.0, "repetition phase pulse process"),
        ),
    ),
    Genre(
        "country",
        0.05,
        0.05,
        (
            "truck",
            "dirt",
            "road",
            "whiskey",
            "boots",
            "porch",
            "hometown",
            "river",
            "church",
            "mama",
            "dust",
            "fields",
            "cowboy",
            "barn",
            "fiddle",
            "tailgate",
        ),
        (
            _s("bluegrass", 0.55, 0.60, 0.70, 0.80, 0.20, 0.04, 125, -9.0, 3.2, "banjo mandolin holler appalachia"),
            _s(
                "country-pop", 0.60, 0.68, 0.65, 0.25, 0.01, 0.04, 115, -6.0, 3.4, "nashville radio tailgate sweetheart"
            ),
        ),
    ),
    Genre(
        "latin",
        0.07,
        0.20,
        (
            "corazon",
            "fiesta",
            "baila",
            "noche",
            "amor",
            "fuego",
            "playa",
            "sol",
            "cuerpo",
            "ritmo",
            "calor",
            "mami",
            "besame",
            "caliente",
        ),
        (
            _s("reggaeton", 0.82, 0.75, 0.70, 0.12, 0.01, 0.12, 95, -5.0, 3.3, "perreo dembow flow barrio"),
            _s("salsa", 0.70, 0.75, 0.80, 0.45, 0.05, 0.06, 180, -7.0, 4.5, "clave timbales conga sabor"),
            _s("bossa-nova", 0.60, 0.30, 0.60, 0.80, 0.20, 0.04, 130, -12.0, 3.6, "saudade ipanema samba violao"),
        ),
    ),
    Genre(
        "metal",
        0.04,
        0.35,
        (
            "blood",
            "steel",
            "iron",
            "darkness",
            "fire",
            "war",
            "doom",
            "blade",
            "grave",
            "throne",
            "chaos",
            "void",
            "inferno",
            "scream",
        ),
        (
            _s("heavy-metal", 0.40, 0.90, 0.35, 0.01, 0.10, 0.06, 130, -5.0, 5.0, "riff headbang leather axe"),
            _s("death-metal", 0.25, 0.97, 0.15, 0.00, 0.25, 0.10, 180, -4.0, 4.5, "growl blast-beat carnage abyss"),
            _s("metalcore", 0.35, 0.95, 0.25, 0.01, 0.05, 0.10, 150, -4.0, 3.8, "breakdown scream pit wall"),
        ),
    ),
    Genre(
        "folk",
        0.05,
        0.02,
        (
            "river",
            "mountain",
            "wind",
            "home",
            "old",
            "fire",
            "field",
            "song",
            "wood",
            "valley",
            "morning",
            "friend",
            "road",
            "lantern",
        ),
        (
            _s("indie-folk", 0.50, 0.40, 0.45, 0.75, 0.10, 0.04, 105, -10.0, 3.9, "cabin harmonica pine campfire"),
            _s("singer-songwriter", 0.48, 0.32, 0.38, 0.82, 0.03, 0.05, 95, -11.0, 3.7, "diary kitchen letter coffee"),
        ),
    ),
    Genre(
        "k-pop",
        0.04,
        0.02,
        (
            "oppa",
            "saranghae",
            "fantasy",
            "sparkle",
            "dream",
            "candy",
            "idol",
            "shining",
            "heart",
            "universe",
            "magic",
            "galaxy",
        ),
        (
            _s("k-pop-idol", 0.75, 0.82, 0.70, 0.08, 0.01, 0.07, 125, -4.5, 3.3, "comeback choreo bias lightstick"),
            _s("k-ballad", 0.45, 0.40, 0.30, 0.50, 0.01, 0.04, 80, -7.5, 4.1, "tears goodbye snow drama"),
        ),
    ),
    Genre(
        "ambient",
        0.03,
        0.00,
        (
            "drift",
            "space",
            "breath",
            "ocean",
            "light",
            "silence",
            "float",
            "horizon",
            "mist",
            "glacier",
            "calm",
            "cloud",
        ),
        (
            _s("drone", 0.15, 0.20, 0.15, 0.60, 0.95, 0.04, 70, -20.0, 9.0, "hum sustain monolith resonance"),
            _s("new-age", 0.25, 0.18, 0.55, 0.85, 0.90, 0.04, 75, -17.0, 6.5, "crystal meditation chakra aura"),
        ),
    ),
    Genre(
        "blues",
        0.03,
        0.02,
        ("trouble", "woman", "train", "crossroads", "moan", "whiskey", "rain", "lonesome", "devil", "cotton", "mojo"),
        (
            _s("delta-blues", 0.50, 0.35, 0.40, 0.85, 0.10, 0.06, 95, -12.0, 3.6, "bottleneck porch slide mississippi"),
            _s("electric-blues", 0.50, 0.60, 0.45, 0.30, 0.15, 0.05, 110, -9.0, 4.4, "chicago bend shuffle amplifier"),
        ),
    ),
)

# Moods are the four valence x energy quadrants; the index is 2 * (valence > .5) + (energy > .5).
MOODS: tuple[str, ...] = ("melancholic", "tense", "serene", "euphoric")
MOOD_WORDS: tuple[tuple[str, ...], ...] = (
    (
        "alone",
        "cold",
        "tears",
        "grey",
        "empty",
        "rain",
        "fading",
        "memory",
        "gone",
        "lost",
        "broken",
        "quiet",
        "ghost",
        "sorrow",
    ),
    ("anger", "pressure", "run", "nerves", "edge", "fight", "fear", "pulse", "danger", "trapped", "restless", "burn"),
    ("gentle", "sunday", "breeze", "warm", "soft", "home", "garden", "slow", "easy", "peaceful", "glow", "sunrise"),
    ("jump", "high", "bright", "party", "alive", "celebrate", "sunshine", "wild", "shout", "golden", "free", "joy"),
)
COMMON_WORDS: tuple[str, ...] = (
    "i",
    "you",
    "we",
    "me",
    "my",
    "your",
    "the",
    "a",
    "and",
    "in",
    "on",
    "to",
    "of",
    "all",
    "time",
    "way",
    "day",
    "life",
    "world",
    "eyes",
    "hands",
    "sky",
    "night",
    "light",
    "know",
    "feel",
    "want",
    "need",
    "go",
    "come",
    "say",
    "see",
    "never",
    "always",
    "again",
    "still",
    "only",
    "just",
    "now",
    "here",
)
NAME_WORDS: tuple[str, ...] = (
    "echo",
    "velvet",
    "paper",
    "silver",
    "midnight",
    "atlas",
    "lantern",
    "honey",
    "ember",
    "satellite",
    "crimson",
    "harbor",
    "willow",
    "cobalt",
    "meridian",
    "lotus",
    "wolf",
    "tiger",
    "raven",
    "aurora",
    "static",
    "canyon",
    "juniper",
    "nova",
    "mirage",
    "fable",
    "orchid",
    "marble",
)
SYLLABLES: tuple[str, ...] = (
    "ka",
    "ri",
    "mo",
    "sa",
    "lu",
    "ne",
    "do",
    "vi",
    "ta",
    "ren",
    "jo",
    "mi",
    "an",
    "el",
    "or",
    "zu",
    "ha",
    "be",
    "ly",
    "xa",
    "no",
)


@dataclass(frozen=True)
class Region:
    code: str  # ISO 3166-1 alpha-2
    share: float  # share of listeners
    utc_offset_hours: float
    genre_tilt: dict[str, float]  # multiplies the global genre prior of a listener's taste


REGIONS: tuple[Region, ...] = (
    Region("US", 0.28, -5, {"country": 2.5, "hip-hop": 1.3, "r-n-b": 1.3}),
    Region("GB", 0.08, 0, {"rock": 1.5, "electronic": 1.4}),
    Region("DE", 0.07, 1, {"electronic": 2.0, "metal": 1.8}),
    Region("FR", 0.05, 1, {"hip-hop": 1.4, "electronic": 1.3, "jazz": 1.3}),
    Region("SE", 0.03, 1, {"metal": 2.2, "electronic": 1.5, "pop": 1.2}),
    Region("BR", 0.10, -3, {"latin": 4.0, "pop": 0.9}),
    Region("MX", 0.08, -6, {"latin": 4.0, "country": 0.5}),
    Region("CA", 0.04, -5, {"country": 1.5, "folk": 1.4}),
    Region("JP", 0.06, 9, {"jazz": 2.0, "k-pop": 2.0, "ambient": 1.5}),
    Region("KR", 0.05, 9, {"k-pop": 6.0}),
    Region("VN", 0.05, 7, {"k-pop": 3.0, "pop": 1.3, "r-n-b": 1.3}),
    Region("IN", 0.05, 5.5, {"pop": 1.5, "folk": 1.5, "classical": 1.5}),
    Region("ID", 0.03, 7, {"pop": 1.4, "k-pop": 2.0}),
    Region("AU", 0.03, 10, {"rock": 1.3, "electronic": 1.3}),
)

# Share of sessions that start in each local hour (evenings peak, nights are quiet).
DIURNAL: tuple[float, ...] = (
    1.2, 0.7, 0.4, 0.3, 0.3, 0.5, 1.5, 3.5, 5.5, 5.0, 4.5, 4.5,
    5.0, 5.0, 4.5, 4.5, 5.0, 6.0, 7.0, 7.5, 7.5, 7.0, 5.5, 3.0,
)  # fmt: skip

"""Words the customer quotes from someone else: a report of harassment, or pasted copy.

Support teams of marketplaces, delivery and dating services get reports that quote the
harasser: 'The driver said "nice legs, you home alone?" - please block him'. Those words are
not aimed at the agent, and holding the report delays help for the person who was harassed.
Text inside quotes (" “ ” „ « », or ' around words) counts as reported when a frame stands
just before it or after it: someone else's words ("he wrote", "messages like", "il m'a dit",
"me escribió", "er schrieb", "..., he said") in a message that reads as a report (it speaks of
a complaint, its evidence or what should be done, or of the company's own people), or text
that is nobody's words to the agent ("the text I pasted", "the app says", a product's name).
The quoted earlier mail of a reply is not the sender's either (reply_chain_spans). Rules and
the classifier leave these spans out; everything the customer says in their own words is
still judged, so a harasser gains nothing by quoting himself outside such a frame.

Works on normalised text (lower case, no accents): spans are offsets into it.
"""

from __future__ import annotations

import re

import regex

MAX_QUOTE = 400   # characters: a quotation longer than this is not a short reported line
MAX_QUOTATIONS = 200  # looked at per text: a report quotes a few lines, not thousands
FRAME_REACH = 120  # characters before the quotation in which its frame is looked for
FRAME_GAP = 40     # characters at most between the end of the frame ("he wrote") and the
                   # quotation: "he wrote in the app chat: first '...'"
# A quotation that follows someone's reported words within the same sentence, a few words
# between, is reported too: '"zorra", "sé dónde vives"', '"...", then "...", and last night "..."'.
# Or a longer stretch that ends in a colon: '„...“ und später, als ich unterschrieb: „...“'.
_LIST_GLUE = regex.compile(r"[^.!?\n\"“”„«»]{0,40}|[^.!?\n\"“”„«»]{0,100}:\s?")

_OPENING = {'"': '"', "“": "”", "”": "”", "„": "“", "«": "»", "»": "«"}
# A single quote opens a quotation where it starts a word (_opens) and closes one where it ends
# a word: the apostrophes of "don't" and "I'm" do neither.
_MARKS = "\"“”„«»'"
_SINGLE_CLOSING = re.compile(r"(?<=\S)'(?!\w)")


def _near_quote(frames: str) -> str:
    """The frames, ending at most FRAME_GAP characters before the quotation, with no other
    quotation between (a frame speaks of the quotation that follows it)."""
    return rf"(?:{frames})[^\"“”„«»]{{0,{FRAME_GAP}}}$"


_ACTOR = (r"(?:he|she|they|him|her|someone|somebody|a stranger|"
          r"(?:the|a|an|one|some|another|your|my|his|their) (?:\w+ )?(?:seller|buyer|"
          r"driver|courier|rider|user|guy|man|woman|customer|player|host|guest|landlord|tenant|"
          r"technician|engineer|installer|trainer|instructor|coach|doctor|nurse|teacher|porter|"
          r"waiter|agent|rep|salesman|photographer|plumber|electrician|builder|mechanic|"
          r"member|passenger|match|person|account|neighbou?r|ex|boss|manager|colleague|"
          r"coworker|co-worker|contractor|delivery \w+)|this (?:guy|man|person|user|account|"
          r"seller|buyer|driver|player))")
# Someone else said or wrote it: reported when the message reads as a report (_COMPLAINT).
_PERSON_FRAMES = regex.compile(_near_quote(
    rf"\b{_ACTOR},? (?:[^\s\"“”„«»]+ ){{0,10}}(?:said|says|wrote|writes|sent|texted|typed|"
    r"messaged|asked|replied|commented|posted|shouted|yelled|called (?:me|her|us)|"
    r"keeps? (?:saying|sending|"
    r"writing|texting|messaging|emailing|posting))\b"
    r"|\b(?:calling|called|calls) (?:me|her|us|my \w+)(?: an?)?\b"
    r"|\b(?:told|tells|telling) (?:me|her|us|my \w+)(?: to| that)?\b"
    r"|\b(?:keeps?|kept|been) (?:messaging|texting|emailing|writing to|sending) (?:me|her|us)\b"
    r"|\b(?:messages?|texts?|things|comments?|stuff)(?: \w+){0,3} like\b|\bsaying\b"
    r"|\b(?:messages?|texts?|things|comments?|remarks?|stuff)\b[^.\"“”„«»]{0,80}\b(?:including|such as)\b"
    r"|\b(?:kommentare|bemerkungen|spruche)(?: \w+){0,3} wie\b"
    r"|\b(?:message|text|note|e-?mail|comment|review|reply|dm)s? (?:said|says|read|reads)\b"
    # "today's said", "the last one read": one of several messages already spoken of.
    r"|\b(?:today|yesterday|tonight|this morning|last night|the latest|the last|the first|"
    r"another|the other|this one|that one)(?:'s| one| 's)? (?:said|says|read|reads)\b"
    r"|\b(?:note|message|text|letter|card|comment|review|post|e-?mail|dm|sms|voicemail|"
    r"whatsapp|mensaje|nota|texto|comentario|nachricht|notiz|kommentar|mot|commentaire)s? "
    r"(?:\w+ ){0,4}(?:saying|that said|that says|which said|reading|diciendo|"
    r"que decia|que pone|disant|qui disait|mit den worten)\b"
    r"|\b(?:then|and|also|later|even|just)(?: once| twice| then| later| even| also| again)? "
    r"(?:said|wrote|texted|asked|typed|messaged|added|"
    r"replied|shouted|yelled)\b"
    # "his last message:", "me está escribiendo mensajes ...:": a colon right before the quote.
    r"|\b(?:messages?|mensajes?|nachrichten?|texts?|sms|words|mots?|notes?|notas?|notiz|"
    # A payment's reference used to send words: "the references from the last week:".
    r"(?:payment )?references?|referencias?|verwendungszwecke?|libelles?|"
    # What it turned into: "then it turned into this (copied straight from the chat):".
    r"copied|pasted|this|these|following|below|"
    r"palabras|worte|comments?|commente|comenta|kommentiert|wrote|writing|texting|messaging|"
    r"messaged|emailing|sent|said|"
    r"told|escribiendo|escribio|escrito|dicho|ecrit|schreibt|schrieb|sagte|sagt|meinte|rief|"
    r"fragte|solto|lanzo|lance)\b[^\"“”„«»]{0,80}:\s?$"
    r"|\bquotes?(?:, in order)?:"
    r"|\bhere(?:'s| is) what (?:he|she|they) (?:wrote|said|sent|says)\b"
    r"|\b(?:me|le|les|nos|te) (?:dijo|escribio|mando|envio|pregunto|puso|grito|solto|lanzo|"
    r"suelta)\b"
    r"|\b(?:escribio|dijo|puso|mando):?"
    r"|\b(?:mensajes?|cosas|comentarios) como\b|\b(?:textualmente|literalmente)\b"
    r"|\bdel tipo\b|\b(?:me|le|nos) (?:manda|envia|escribe|dice)\b"
    r"|\b(?:me|le|nos) ha (?:escrito|dicho|mandado|enviado|puesto)\b"
    r"|\b(?:m'a|m a|lui a|nous a) (?:dit|ecrit|envoye|demande|lance|crie|sorti|balance)\b"
    r"|\bm'(?:ecrit|envoie|dit|traite de)\b|\bm'a traitee? de\b"
    r"|\b(?:me|le|les|nos) (?:llamo|llamaba|llama|trato de|ha llamado|grita|grito|gritaba)\b"
    r"|\ben (?:me |lui )?(?:traitant de|demandant si|disant)\b|\b(?:je cite|cito|ich zitiere|and i quote)\b"
    r"|\basking (?:[\w-]+ ){0,4}to\b|\ba (?:demande|dit|ecrit|lance|crie|raconte)\b"
    r"|\b(?:asked|asking) (?:me|her|us|my \w+) (?:if|whether)\b"
    r"|\b(?:il|elle|ils) (?:m'a|m a|lui a|nous a|a|m'ecrit|m ecrit) ?(?:dit|ecrit|envoye|"
    r"demande|lance|crie)\b|\b(?:des|les) (?:messages?|trucs|choses) comme\b|\bmot pour mot\b"
    r"|\b(?:er|sie) (?:hat|schrieb|sagte|meinte|fragte|schreibt|sagt|rief)\b"
    r"|\b(?:schreibt|schrieb|sagt|sagte|schickt|schickte) (?:mir|ihr|uns)\b"
    r"|\b(?:sagte|schrieb|fragte|rief|meinte|schrie|sagt|schreibt) (?:er|sie|der|die|ein|eine)\b"
    r"|\b(?:commenting|commented|comments|remarks?) on (?:my|her|our) \w+"
    r"|\b(?:angesprochen|angemacht|nachgerufen|hinterhergerufen|zugerufen)\b"
    r"|\b(?:kept|keeps) telling (?:me|her|us|my \w+)"
    r"|\bdiciendo(?:me|le|nos)?\b|\ben (?:me|lui) disant\b"
    r"|\b(?:ecrit|dit|envoie|a ecrit|a dit|dijo|escribio|escribe|dice) a "
    r"(?:mon|ma|mes|mi|mis|notre|nuestra|nuestro) \w+"
    r"|\b(?:got|received|get|getting) (?:a |this |the )?(?:message|text|dm|note)\b"
    r"|\b(?:nachricht|mail|sms) (?:bekommen|erhalten)\b|\b(?:recibio|recibi|he recibido|"
    r"ha recibido) (?:un |este |el )?mensaje\b|\b(?:recu|a recu) (?:un |ce |le )?(?:message|sms|texto|mail)\b"
    r"|\b(?:geschrieben|gesagt|geschickt|gefragt):?|\b(?:nachrichten|sachen|dinge|spruche) wie\b"
    # "has now said to me twice": said to someone, whoever the speaker.
    r"|\b(?:said|says|say|wrote|writes|texted|shouted|whispered|yelled|commented|remarked) "
    r"(?:to|at) (?:me|her|us|my \w+)\b|\bhas (?:now |also |again |just )?(?:said|written)\b"
    # What someone named a network or an account: 'renamed his wifi network to "KATE_IS_A_..."'.
    r"|\b(?:wifi|wi-fi|wlan|network|ssid|hotspot|username|user name|display name|nickname|"
    r"gamertag|profile name|account name|benutzername|nombre de usuario|pseudo)s? "
    r"(?:\w+ ){0,2}(?:to|in|as|en|como|zu|called|named|is|was|ist|es|est)\s?"
    # Words the customer was moderated for: 'banned for typing "..."', "por escribir".
    r"|\b(?:for|por|pour) (?:writing|typing|saying|posting|sending|escribir|decir|poner|"
    r"publicar|avoir (?:ecrit|dit|tape|mis|poste|envoye))\b"
    r"|\bwortlich\b"))
# Text that is nobody's words to the agent: copy the customer pasted, what an app shows.
_TEXT_FRAMES = regex.compile(_near_quote(
    r"\b(?:copied|quoted|pasted) (?:exactly|verbatim|word for word|below|here|in)\b"
    r"|\b(?:text|copy|description|wording|slogan|tagline|caption|listing|ad|advert|banner) "
    r"(?:that )?(?:i|we) (?:pasted|copied|used|wrote|put)\b"
    r"|\bthe (?:\w+ )?(?:(?:description|listing|copy|ad|advert|banner|slogan|tagline|caption|"
    r"app|site|website|page|screen|system|error|message|email|notification|portal|label|box|"
    r"packaging|sign|button) (?:\w+ ){0,2}(?:says|said|reads|read|shows|showed|displays))\b"
    # What a gift card, an engraving or a cake is to say: the customer's words to someone else.
    r"|\b(?:gift |message |greeting )?(?:card|note|message|engraving|inscription|cake|ribbon|"
    r"tag)s? (?:that |which |to |should )?(?:says|saying|say|reads|reading|read|with the words)\b"
    r"|\b(?:engraved|printed|written|iced|embroidered) with\b"
    r"|\b(?:tarjeta|nota|dedicatoria|grabado|tarta) (?:que )?(?:diga|dice|ponga|pone|con)\b"
    r"|\b(?:karte|gravur|widmung|torte|schleife) (?:mit (?:dem text|den worten)|mit)\b"
    r"|\b(?:carte|mot|gravure|dedicace|gateau) (?:qui dit|disant|avec)\b"
    r"|\bel texto (?:exacto )?que (?:pegue|copie|puse|use)\b"
    r"|\ble texte (?:exact )?que j'ai (?:colle|copie|mis|utilise)\b"
    r"|\bder text,? den ich (?:eingefugt|kopiert|verwendet) habe\b"))
# A product's name in quotes is nobody's words to the agent: 'your "Drop Dead Gorgeous"
# mascara', 'el esmalte "Rojo Sexy"'. Short, and right after or before a product word.
MAX_NAME = 40
_PRODUCTS = (r"(?:mascara|lipstick|lip gloss|polish|nail polish|varnish|vernis|esmalte|nagellack|"
             r"lippenstift|rouge a levres|pintalabios|perfume|parfum|fragrance|scent|shade|colou?r|"
             r"couleur|teinte|farbe|tono|model|modele|modelo|modell|edition|collection|coleccion|"
             r"kollektion|range|line|set|pack|bundle|plan|tarif|tarifa|package|bouquet|candle|"
             r"bougie|kerze|vela|flavou?r|game|jeu|juego|spiel|film|movie|pelicula|book|livre|"
             r"libro|buch|song|album|dress|robe|vestido|kleid|costume|disfraz|kostum|bra|"
             r"lingerie|body|bodysuit|t-shirt|shirt|hoodie|mug|taza|tasse|poster|card|carte|"
             r"tarjeta|karte|sticker|print|slogan|option|theme|template|filter)s?")
_NAME_BEFORE = regex.compile(rf"\b{_PRODUCTS} ?$")
_NAME_AFTER = regex.compile(rf"[ ,]?{_PRODUCTS}\b")
# The frame after the quotation: '"you home alone?", he asked'.
_FRAME_AFTER = regex.compile(
    rf"[\s,.;:!?-]{{0,3}}(?:{_ACTOR} (?:said|wrote|asked|replied|texted|typed|added|messaged|"
    r"sent)\b|(?:gesagt|geschrieben|geschickt|geschrien|gerufen|gefragt|genannt|schreiben|sagen|"
    r"posten)\b"
    r"|(?:m'a|lui a|nous a)-t-(?:il|elle) (?:dit|ecrit|lance)\b|(?:me|le|nos) (?:dijo|escribio|"
    r"grito)\b)")
# What makes quoted words a report: the message speaks of a complaint, of its evidence (CCTV,
# the attached username), of what should be done ("please speak to him") or how it felt, or
# of someone the company employs, sends or hosts ("your porter", "el repartidor").
_COMPLAINT = regex.compile(
    r"\b(?:report\w*|block\w*|ban(?:ned|ning)?|banea\w*|baneo|harass\w*|creep\w*|inappropriate|"
    r"abus\w*|unsafe|scared|afraid|frightened|uncomfortable|police|threat\w*|stalk\w*|screenshots?|"
    r"conduct|permission|complain\w*|escalate|unacceptable|not ok|not okay|disgusting|"
    r"take action|remove (?:it|this|them|the)|bann\w*|rude|sexist|offensive|offended|"
    r"patroni[sz]\w*|condescending|on record|acceptable|appropriate|behaviou?r|someone else|"
    r"(?:didn.?t|did not|won.?t|will not|not) (?:reply|respond|answer|give)|apolog\w*|"
    r"disculpa\w*|excuses|entschuldigung|medidas|mesures|massnahmen|dagegen|"
    # Evidence and moderation: CCTV, security, the attached username, take it down.
    r"cctv|cameras?|camaras|security|seguridad|securite|sicherheit|attach\w*|adjunt\w*|"
    r"anhang|piece jointe|username|nombre de usuario|pseudo|taken? (?:it |them )?down|removed?|"
    r"delete|borra\w*|supprim\w*|losch\w*|expuls\w*|protect\w*|proteg\w*|schutz\w*|"
    r"widerlich|vile|horrible|awful|asqueroso|degoutant|humili\w*|humill\w*|"
    r"erniedrig\w*|demutig\w*|verstort|ernst nehmen|plaindre|me plains|degrading|degradant\w*|"
    r"nick|nickname|gamertag|(?:user|player|gamer) ?tag|handle|"
    r"(?:do|haced|hagan|haga|faites|tun sie|tut) (?:something|algo|quelque chose|etwas)|"
    # Asking for action, or saying how it felt.
    r"speak to (?:him|her|them)|talk to (?:him|her|them)|have a word|"
    r"stop (?:this|him|it|them|these)|asked (?:him|her|them) to stop|i quote|not interested|"
    r"deal with|look into|investigat\w*|"
    r"warn\w*|sack\w*|dismiss\w*|suspend\w*|disciplin\w*|worried|nervous|terrified|upset|"
    r"shaken|distress\w*|intimidat\w*|hablad con|hable con|hablen con|que pare|que deje de|"
    r"despid\w*|preocupad\w*|nerviosa|intimid\w*|molest\w*|hableis con|registrad\w*|constancia|"
    r"consign\w*|festgehalten|aktenkundig|gesperrt|gebannt|suspendu\w*|suspendid\w*|"
    r"parlez-lui|arret\w*|importun\w*|"
    r"enquete|licenci\w*|inquiet\w*|sprechen sie mit|aufhor\w*|unterlass\w*|untersuch\w*|"
    r"abmahn\w*|besorgt|eingeschuchtert|"
    # Someone the company employs, sends or hosts: a report about them.
    r"(?:your|vuestr[oa]s?|votre|vos|ihr|ihre|ihren|ihrem) (?:\w+ )?(?:driver|courier|agent|"
    r"employee|staff|technician|engineer|rep|representative|photographer|trainer|instructor|seller|"
    r"buyer|user|member|host|landlord|porter|caretaker|supervisor|contractor|installer|"
    r"plumber|fitter|conductor|guard|app|platform|marketplace|repartidor|tecnico|"
    r"empleado|vendedor|usuario|agente|constructora|encargado|portero|aplicacion|"
    r"plataforma|livreur|chauffeur|technicien|employe|vendeur|utilisateur|appli|application|"
    r"plateforme|reparateur|fahrer|techniker|mitarbeiter|verkaufer|nutzer|plattform|monteur)s?\b|"
    r"que (?:lo|la|los) contratais|que vous employez|den sie (?:beauftragt|geschickt)|"
    r"(?:the|el|la|le|der|die) (?:\w+ )?(?:driver|courier|delivery \w+|repartidor|livreur|"
    r"fahrer|bote|zusteller|technician|tecnico|technicien|techniker|mitarbeiter|employee|"
    r"employe|empleado|operario|chauffeur|demenageur|mover|removal \w+|conductor|staff member|"
    r"worker|trabajador)\b|"
    # "one of your crew", "un de vos déménageurs", "uno de los operarios", "einen Ihrer Mitarbeiter"
    r"(?:one|some|two) of your \w+|(?:un|une|l'un|l'une) de vos \w+|"
    r"(?:uno|una) de (?:los|las|vuestros|vuestras|sus) \w+|(?:einen?|einer|einem) ihrer \w+|"
    r"no quiero que (?:vuelva|venga)|"
    r"(?:don.?t|do not) want (?:him|her|them) (?:back|again|to come)|ne revienne plus|"
    r"nicht mehr (?:zu mir|kommt)|"
    r"capturas?|queja|captures? d'ecran|plainte|bildschirmfotos?|beschwer\w*|asustad\w*|"
    r"denunci\w*|bloqu\w*|acos\w*|policia|incomod\w*|miedo|amenaz\w*|"
    r"signal\w*|harcel\w*|peur|mal a l'aise|menac\w*|"
    r"meld\w*|sperr\w*|belastig\w*|polizei|(?:straf)?anzeige erstatt\w*|strafanzeige|angst|"
    r"unangenehm|bedroh\w*)")


def reported_spans(text: str) -> list[tuple[int, int]]:
    """[start, end) of each quotation in normalised text that reports someone else's words."""
    complaint: bool | None = None  # whether the message speaks of a complaint, when asked
    spans: list[tuple[int, int]] = []
    listing = False  # the last span reported someone's words: a list of them may follow
    position = 0
    for _ in range(MAX_QUOTATIONS):
        start, mark = _next_opening(text, position)
        if start < 0:
            break
        if mark == "'":
            found = _SINGLE_CLOSING.search(text, start + 1, start + 1 + MAX_QUOTE)
            closing = found.start() if found else -1
        else:
            closing = text.find(_OPENING[mark], start + 1, start + 1 + MAX_QUOTE)
        if closing == -1 and mark in "“”":  # writers mix the two curly quotes
            closing = text.find("“" if mark == "”" else "”", start + 1, start + 1 + MAX_QUOTE)
        if closing == -1:
            position = start + 1
            continue
        before = text[max(0, start - FRAME_REACH):start]
        if ((listing and _LIST_GLUE.fullmatch(text, spans[-1][1], start))
                or _PERSON_FRAMES.search(before) or _FRAME_AFTER.match(text, closing + 1)) \
                and (complaint if complaint is not None
                     else (complaint := _COMPLAINT.search(text) is not None)):
            spans.append((start, closing + 1))
            listing = True
        elif _TEXT_FRAMES.search(before) or (closing - start <= MAX_NAME and (
                _NAME_BEFORE.search(before) or _NAME_AFTER.match(text, closing + 1))):
            spans.append((start, closing + 1))
            listing = False
        else:
            listing = False
        position = closing + 1
    return spans


# The line that introduces a quoted earlier message, as mail clients write it (normalised: no
# accents, lower case): "On Mon, 5 Jan 2026 at 05:17, Chloe <...> wrote:", "El ... escribió:",
# "Am ... schrieb ...:", "Le ... a écrit :"; a client may wrap it, so only its end is needed.
_ATTRIBUTION = regex.compile(r"\b(?:wrote|writes|escribio|schrieb|schreibt|a ecrit|ecrit|"
                             r"ha scritto|heeft geschreven|escreveu) ?:?\s*$")
# The line above a forwarded or replied-to original (normalised).
ORIGINAL_MESSAGE = re.compile(r"-{2,} ?(?:original message|mensaje original|message d'origine|"
                              r"ursprungliche nachricht|forwarded message|mensaje reenviado|"
                              r"message transfere|weitergeleitete nachricht)")


def reply_chain_spans(lines: str) -> list[tuple[int, int]]:
    """[start, end) of the quoted earlier messages in normalised text with its line breaks:
    the "> " lines after a line introducing them ("On ... wrote:"), and everything after an
    "Original Message" or "Forwarded message" line. That is the agent's own mail, whose
    "your home address" or "I'm sorry you..." must not count against the customer. So are
    the "> " lines right after a line that introduces someone else's words in a report ("Some
    of what he's sent:"). A "> " line with no such introduction is still judged: it is not
    known to be a quotation."""
    if ">" not in lines and "--" not in lines:
        return []
    spans: list[tuple[int, int]] = []
    introduced = False
    reported = False  # the "> " lines right after "some of what he's sent:", in a report
    complaint: bool | None = None
    position = 0
    for line in lines.split("\n"):
        end = position + len(line)
        start = line.lstrip()
        if "--" in start and ORIGINAL_MESSAGE.match(start):
            spans.append((position, len(lines)))
            break
        if (introduced or reported) and start.startswith(">"):
            spans.append((position, end))
        elif _ATTRIBUTION.search(line):
            introduced = True
        elif start:
            frame = start.rstrip()
            reported = frame.endswith(":") and _PERSON_FRAMES.search(frame) is not None and \
                (complaint if complaint is not None
                 else (complaint := _COMPLAINT.search(lines) is not None))
        position = end + 1
    return spans


def not_the_senders(text: str, lines: str) -> list[tuple[int, int]]:
    """Sorted, non-overlapping spans of normalised text (`lines`: the same with its line
    breaks) that are not the sender's own words: reported words and quoted earlier mail."""
    spans = sorted(reported_spans(text) + reply_chain_spans(lines))
    merged: list[tuple[int, int]] = []
    for start, end in spans:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _next_opening(text: str, position: int) -> tuple[int, str]:
    """Where the next quotation opens at or after `position`, and its mark ((-1, "") if none).
    str.find for each mark: a regular expression would try every position of the text."""
    best, best_mark = -1, ""
    for mark in _MARKS:
        found = text.find(mark, position, best if best >= 0 else len(text))
        while mark == "'" and found >= 0 and not _opens(text, found):
            found = text.find(mark, found + 1, best if best >= 0 else len(text))
        if found >= 0:
            best, best_mark = found, mark
    return best, best_mark


def _opens(text: str, index: int) -> bool:
    """Whether the single quote at `index` starts a word (an apostrophe does not)."""
    before = text[index - 1] if index else " "
    return not (before.isalnum() or before in "_'") and index + 1 < len(text) and \
        (text[index + 1].isalnum() or text[index + 1] == "_")


def inside(spans: list[tuple[int, int]], start: int, end: int) -> bool:
    """Whether [start, end) lies within one of the spans."""
    return any(low <= start and end <= high for low, high in spans)


def blanked(text: str, spans: list[tuple[int, int]]) -> str:
    """The text with each span's characters as spaces but its line breaks: same length and
    the same lines, so the rest keeps its offsets."""
    if not spans:
        return text
    pieces: list[str] = []
    position = 0
    for start, end in spans:
        pieces.append(text[position:start])
        pieces.append("".join(c if c == "\n" else " " for c in text[start:end]))
        position = end
    pieces.append(text[position:])
    return "".join(pieces)

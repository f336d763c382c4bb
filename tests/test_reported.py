"""Someone else's words, quoted in a report or pasted: left out of judging, and only those."""

from __future__ import annotations

import pytest
from conftest import ROOT

from gateway.rules.engine import judge, load_ruleset
from gateway.rules.normalise import normalise
from gateway.rules.reported import blanked, not_the_senders, reported_spans

RULESET = load_ruleset([ROOT / "rules"])


def quoted(text: str) -> list[str]:
    normalised = normalise(text).text
    return [normalised[start:end] for start, end in reported_spans(normalised)]


def verdict(body: str) -> str:
    message = ("Subject: Re: Ticket 5521\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
               f"{body}\r\n")
    return judge(message.encode(), RULESET, 10).action


@pytest.mark.parametrize("report", [
    'The driver who delivered my parcel keeps texting me. Messages like "hey beautiful, you '
    'free this weekend?" and "I know where you live lol". Please block him.',
    'A buyer on your platform wrote "send me pics of you in the dress, stuck up slut". '
    "I have reported him, screenshots attached.",
    '"Nice legs, you home alone?", he asked when I opened the door. This is not ok, I want a '
    "complaint logged.",
    'Un usuario me está escribiendo mensajes: "zorra", "sé dónde vives". Adjunto capturas, '
    "por favor bloqueadlo.",
    "Un acheteur m'écrit tous les jours. Il m'a écrit « envoie-moi une photo de toi, t'es "
    "bonne » et je veux que vous bloquiez son compte.",
    'Ein Verkäufer belästigt mich. Er schrieb „Ich weiß, wo du wohnst“. Bitte sperren Sie ihn.',
    # Said to her, by someone the frame names only long before.
    "The tenant in flat 4, the one with the loud dog and the blue van, has said to me twice, "
    '"nice legs, come up for a drink". I want it on record.',
    # Words a player was banned for, quoted after the fact.
    'Mein Sohn wurde gesperrt. Darf man im Spiel-Chat nicht "ich bring dich um" schreiben, '
    "wenn es nur ein Shooter ist?",
    'Un vecino me ha dicho varias veces "qué buena estás, dame tu número". Quiero que quede '
    "registrado y que habléis con él.",
    "One of your couriers left a note on my door saying 'nice legs, call me' with his number. "
    "I'm not impressed, please report him.",
    "Someone using your chat widget on my shop wrote 'send me pics of you, babe, or I'll find "
    "you'. How do I block a user and report it?",
    "Your colleague Mark told me to 'calm down, sweetheart' on the phone. I find that "
    "patronising and want it on record.",
    "A seller on your platform sent me this after I left a review: 'I know where you live, you "
    "stupid cow, delete it or else'. Please ban him.",
    # The speaker named with an aside, verbs of blurting, and how it felt.
    'The removal man, a tall guy called Dean I think, said "you\'d be prettier if you smiled, '
    'love" when I asked about the boxes. I found it degrading.',
    "Le livreur m'a sorti « t'es mignonne quand tu boudes, ma belle » devant mes enfants. Je me "
    "suis sentie humiliée.",
    'Cuando le pedí la factura, el operario me soltó "así calladita estás más guapa, preciosa". '
    "Me pareció humillante.",
    "Als ich nach dem Lieferschein fragte, sagte der Monteur: „Süße, lächeln steht dir "
    "besser“. Ich fand das erniedrigend.",
    "An der Kasse hat der junge Mitarbeiter zu meiner Tochter gesagt: „Mit dem Rock kannst du "
    "gern öfter kommen, Süße.“ Sie war völlig verstört.",
    # One of several messages already spoken of; a name someone gave a network.
    "My ex keeps sending me 1p transfers with notes. Yesterday's said \"answer me you ugly "
    "cow\" and the latest one read \"I'm outside your work\". Please block him.",
    'My neighbour renamed his wifi network to "KATE_IS_A_WHORE" and everyone in the block sees '
    "it. I have reported him to the police.",
    'The fitter said "all alone at home, sweetheart?" at the door and later, when I signed the '
    'delivery note: "for you I would work overtime, gorgeous". Please speak to him.',
    # Payment references used to send words, one quotation a line.
    "My ex sends me 1p transfers. Some of the references from the last week:\n\n"
    '"YOU WILL REGRET THIS"\n"ANSWER ME SLAG"\n"I KNOW WHERE U WORK"\n\n'
    "I've reported him to the police. Please block payments from his account.",
    # Lines one under another after a frame: copied from a chat, comments "including", "wie".
    "A buyer keeps messaging me, then it turned into this (copied straight from the chat):\n\n"
    '"bet u look fit in it"\n"whats ur number, easier than this app"\n\n'
    "Please remove his accounts, I have screenshots.",
    "I want to report the driver. He made comments that made me uncomfortable, including "
    '"you\'re far too pretty to be getting taxis home on your own". Please take action.',
    "Ich möchte mich über einen Fahrer beschweren. Er hat Kommentare gemacht wie\n\n"
    '"Na Süße, so spät noch allein unterwegs?"\n\nIch erwarte, dass Sie dem nachgehen.',
    "Je souhaite signaler un chauffeur. Il a gardé les portes verrouillées en disant « tu me "
    "fais pas un bisou avant ? ». J'envisage de porter plainte.",
])
def test_a_report_that_quotes_the_harasser_is_delivered(report: str) -> None:
    assert verdict(report) == "deliver"


@pytest.mark.parametrize("copy", [
    'Your editor rejects our product page. This is the exact copy I pasted in: "Sexy, sleek '
    'and built to last". Why?',
    'The app says "we could not verify your photo" every time I try. Can you look?',
    # What a gift card or an engraving is to say, to someone else.
    "Can you gift wrap it and include a card that says \"To my darling Ruth, 25 years and still "
    "crazy about you\"? Thank you.",
    'Bitte die Gravur mit dem Text „Ich liebe dich, mein Schatz“ auf den Ring.',
])
def test_pasted_copy_and_what_an_app_shows_are_not_the_customer_s_words(copy: str) -> None:
    assert verdict(copy) == "deliver"


@pytest.mark.parametrize("harassment", [
    # No frame: the sender's own words, quoted or not.
    '"Nice legs" is all I thought when I saw your photo. Report me if you like.',
    # A frame without any complaint: a friend's words passed on to the agent.
    'I showed your photo to my brother and he said "wow she is hot, get her number".',
    # Outside the quotation, the sender's own words still count.
    'The app says "we could not verify your photo", so send me one of you in a bikini instead.',
    # A name he gives a network or an account is his own words unless the message is a report.
    'I renamed my wifi network to "SEXY_HANNAH_SEND_NUDES" so you think of me every time.',
])
def test_quoting_does_not_hide_the_sender_s_own_harassment(harassment: str) -> None:
    assert verdict(harassment) == "quarantine"


def test_a_list_continues_only_after_someone_s_reported_words() -> None:
    assert quoted('He sent "you slut", "I know where you live" and "answer me". I reported it') \
        == ['"you slut"', '"i know where you live"', '"answer me"']
    # After an app's message, the next quotation is the sender's again.
    assert quoted('the app says "no match found", "send nudes" I will report this') == \
        ['"no match found"']


def test_the_frame_must_speak_of_the_quotation_that_follows_it() -> None:
    # "he said" belongs to the first quotation, not to the one after the sentence between.
    text = ('He said "call me back" and I did. Anyway "you look hot in your photo". '
            "I am reporting the delay.")
    assert quoted(text) == ['"call me back"']


def test_blanking_keeps_length_and_lines() -> None:
    text = 'he wrote "a\nb" then'
    spans = [(9, 14)]
    assert blanked(text, spans) == 'he wrote   \n   then'
    assert len(blanked(text, spans)) == len(text)


def test_apostrophes_are_no_quotation_marks() -> None:
    assert quoted("he said 'you're hot, I'm sure' and I reported it") == ["'you're hot, i'm sure'"]
    assert quoted("the customers' orders don't arrive, he said it's fine, report it") == []


def test_the_agent_s_quoted_mail_does_not_count_against_the_customer() -> None:
    # "your home address", "I'm sorry you..." are the agent's words in the quoted reply.
    reply = ("Hi, the replacement SIM still hasn't come. Could you send it recorded?\r\n\r\n"
             "On Tue, 13 Jan 2026 at 17:15, Sophie <sophie@support.example> wrote:\r\n"
             "> Hi Imogen, I've sent a replacement SIM to your home address.\r\n"
             "> I'm sorry you had to wait.\r\n")
    assert verdict(reply) == "deliver"
    forwarded = ("See below.\r\n---------- Forwarded message ----------\r\n"
                 "What's your home address?\r\n")
    assert verdict(forwarded) == "deliver"


def test_quoted_lines_without_an_introduction_are_still_judged() -> None:
    assert verdict("Thanks for the refund.\r\n> what's your home address, babe?\r\n") == \
        "quarantine"
    # After the quotation, the customer's own words count as ever.
    assert verdict("On Mon, Alex wrote:\r\n> Your refund is done.\r\n"
                   "Thanks. Now what's your home address, babe?\r\n") == "quarantine"


def test_quoted_lines_that_a_report_introduces_are_someone_else_s() -> None:
    report = ("A user on your forum keeps messaging me. Some of what he's sent:\r\n\r\n"
              "> you're prettier than your avatar, send me a real pic\r\n"
              "> i found your instagram from your username lol\r\n\r\n"
              "Please ban his accounts, I have screenshots.\r\n")
    assert verdict(report) == "deliver"
    # Without a report around them, or once the customer's own words resume, they count.
    assert verdict("Some of what I think:\r\n> you're prettier than your avatar, send me a "
                   "real pic\r\n") == "quarantine"
    assert verdict(report + "Also, what's your home address, babe?\r\n") == "quarantine"


def test_spans_that_are_not_the_sender_s_are_sorted_and_do_not_overlap() -> None:
    text = normalise('Fine.\nOn Mon, Alex wrote:\n> he wrote "you are hot", report him\nok').lines
    spans = not_the_senders(text.replace("\n", " "), text)
    assert spans == sorted(spans)
    assert all(a_end <= b_start for (_, a_end), (b_start, _) in zip(spans, spans[1:]))
    assert text[spans[0][0]:spans[0][1]].startswith(">")
    assert blanked(text, spans).count("\n") == text.count("\n")


@pytest.mark.parametrize("report", [
    "The man in flat 4 keeps saying \"morning sexy\" to me when I leave for work. You're the "
    "managing agent. Please speak to him.",
    "El portero de la finca, que lo contratáis vosotros, me llama \"bombón\" cada vez que paso.",
    "In the voice chat someone called me a \"stupid b***h\" and told me to \"get back to the "
    "kitchen\". His gamertag is in the attachment.",
])
def test_a_report_that_names_its_evidence_or_the_company_s_people_is_delivered(
        report: str) -> None:
    assert verdict(report) == "deliver"


def test_a_product_name_in_quotes_is_not_the_customer_s_words() -> None:
    assert verdict('Your "Drop Dead Gorgeous" mascara flaked off on day one.') == "deliver"
    assert verdict('El esmalte "Rojo Sexy" ha llegado más bien naranja.') == "deliver"
    # A long quotation beside a product word is not a name.
    assert verdict('Nice dress "you look so sexy in it, send me a photo of you wearing it '
                   'tonight, just for me"') == "quarantine"

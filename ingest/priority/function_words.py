"""Words too common to show as evidence: articles, pronouns, auxiliaries, greetings.

Display only: the model weighs every term it learned; a reason names only the ones a
person can check. Words that carry scope or negation ("all", "every", "no", "not",
"only", "nur", "tous", "todos") are evidence and are not listed.
"""

from __future__ import annotations

__all__ = ["FUNCTION_WORDS", "is_evidence"]

_WORDS = """
a about after again also am an and any are as at be been before being but by can could
did do does for from had has have he her here hi him his hello how i i'm if in into is
it it's its just let me may might my of on or our ours please regards shall she should
so than thank thanks that the their them then there these they this those to up us very
was we were what when where which who whom why will with would you your yours
aber am an auf aus bei bitte da danke das dass dem den der des die ein eine einem einen
einer es für hallo ich ihr ihre im ist mit oder sie sind uns unser unsere und von war
waren was wie wir zu zum zur als auch habe haben hat kann können man nach noch sich über
vor wenn wird werden wo
au aux avec bonjour ce ces cette dans de des du elle elles en est et être il ils je la
le les leur merci mais nos notre nous on ou par pour qu que qui si sont sur un une vos
votre vous ai avons ont
al como con del el ella ellos en es está están estamos gracias hola las lo los nos
nosotros nuestra nuestro para pero por se ser son su sus también una unas uno unos usted
ustedes y yo o ha han hay hemos muy
alla che ci ciao da dei della di gli grazie ho il io lo loro ma noi per sono voi abbiamo
ha hanno
aan bij dank bedankt deze dit een het hun ik jij met onze op te uit uw van voor wij ze zij
hebben heeft kan kunnen wordt worden
ao às da das do dos e ele eles estão eu isso na nas nós obrigado obrigada olá os seu sua um
uma umas uns você vocês foi tem temos
"""
FUNCTION_WORDS = frozenset(_WORDS.split())


def is_evidence(term: str) -> bool:
    """Whether ``term`` (a word or a phrase) says something: not only function words or digits."""
    return not all(word in FUNCTION_WORDS or word.isdigit() for word in term.split())

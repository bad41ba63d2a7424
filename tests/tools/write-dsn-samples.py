#!/usr/bin/env python3
"""Writes tests/corpus/written/ and tests/corpus/lookalike/: bounces and
automatic replies of software that cannot run here (hosted services,
Windows and groupware servers), in the shape and wording of their
published templates and samples, in the languages they ship; the
malformed MIME real MTAs write; and ordinary mail that looks like bounces.

Each sample gets a .expect file (kind, original Message-ID or none).
Re-run after editing: python3 tests/tools/write-dsn-samples.py
"""
import base64
import os
import textwrap

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "corpus")
SAMPLES = []


def sample(family, name, kind, original, text, crlf=False):
    SAMPLES.append((family, name, kind, original, text, crlf))


def original_message(mid, subject="Quarterly report", frm="Alice Example <alice@example.com>", to="bob@example.net", body="Hello Bob,\n\nthe figures are attached.\n\nAlice\n"):
    return (f"Received: from laptop.example.com (laptop.example.com [203.0.113.7])\n"
            f"\tby mx.example.com (Postfix) with ESMTPSA id 4F2A11C0123\n"
            f"\tfor <{to}>; Mon, 12 Jan 2026 09:14:01 +0100 (CET)\n"
            f"Date: Mon, 12 Jan 2026 09:14:01 +0100\nFrom: {frm}\nTo: {to}\nSubject: {subject}\n"
            f"Message-ID: {mid}\nMIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n\n{body}")


def headers_only(mid, **kw):
    return original_message(mid, **kw).split("\n\n", 1)[0] + "\n"


def report(frm, subject, text, status_fields, attached, attached_type="message/rfc822", own="<ndr-{n}@mx.example.net>", extra_headers="", text_type="text/plain; charset=utf-8", boundary="NDR_BOUNDARY_0001", report_type="delivery-status"):
    return (f"From: {frm}\nTo: alice@example.com\nSubject: {subject}\nDate: Mon, 12 Jan 2026 09:15:00 +0100\n"
            f"Message-ID: {own}\n{extra_headers}MIME-Version: 1.0\n"
            f"Content-Type: multipart/report; report-type={report_type};\n\tboundary=\"{boundary}\"\n\n"
            f"--{boundary}\nContent-Type: {text_type}\nContent-Transfer-Encoding: 8bit\n\n{text}\n"
            f"--{boundary}\nContent-Type: message/delivery-status\n\n{status_fields}\n"
            f"--{boundary}\nContent-Type: {attached_type}\n\n{attached}\n--{boundary}--\n")


def status(rcpt="bob@example.net", code="5.1.1", diag="smtp; 550 5.1.1 User unknown", mta="mx.example.net", action="failed"):
    return (f"Reporting-MTA: dns; {mta}\nArrival-Date: Mon, 12 Jan 2026 09:14:02 +0100\n\n"
            f"Final-Recipient: rfc822; {rcpt}\nAction: {action}\nStatus: {code}\nDiagnostic-Code: {diag}\n")


def ids(prefix, n):
    return f"<{prefix}.{n:03d}.20260112@example.com>"

# ---------------------------------------------------------------- Exchange 2000/2003
EX2003 = {
    "en": ("Undeliverable: {s}", "Your message did not reach some or all of the intended recipients.\n\n      Subject:\t{s}\n      Sent:\t1/12/2026 9:14 AM\n\nThe following recipient(s) could not be reached:\n\n      bob@example.net on 1/12/2026 9:15 AM\n            The e-mail account does not exist at the organization this message was sent to.  Check the e-mail address, or contact the recipient directly to find out the correct address.\n            <mx.example.net #5.1.1>\n"),
    "de": ("Unzustellbar: {s}", "Ihre Nachricht hat einige oder alle Empfänger nicht erreicht.\n\n      Betreff:\t{s}\n      Gesendet am:\t12.01.2026 09:14\n\nFolgende(r) Empfänger konnte(n) nicht erreicht werden:\n\n      bob@example.net am 12.01.2026 09:15\n            Das E-Mail-Konto existiert nicht in der Organisation, an die die Nachricht gesendet wurde.\n            <mx.example.net #5.1.1>\n"),
    "fr": ("Non remis : {s}", "Votre message n'a pas pu être remis à certains ou à l'ensemble des destinataires.\n\n      Objet :\t{s}\n      Envoyé :\t12/01/2026 09:14\n\nLe ou les destinataires suivants sont inaccessibles :\n\n      bob@example.net le 12/01/2026 09:15\n            Le compte de messagerie n'existe pas dans l'organisation à laquelle ce message a été envoyé.\n            <mx.example.net #5.1.1>\n"),
    "es": ("No se puede entregar: {s}", "Su mensaje no llegó a algunos o a ninguno de los destinatarios.\n\n      Asunto:\t{s}\n      Enviado el:\t12/01/2026 9:14\n\nNo se pudo tener acceso a los siguientes destinatarios:\n\n      bob@example.net el 12/01/2026 9:15\n            La cuenta de correo electrónico no existe en la organización a la que se envió este mensaje.\n            <mx.example.net #5.1.1>\n"),
}
for n, (lang, (subj, text)) in enumerate(EX2003.items()):
    mid = ids("ex2003", n)
    s = "Quarterly report"
    sample("exchange-2003", f"exchange2003-{lang}", "dsn", mid,
           report("System Administrator <postmaster@mx.example.net>", subj.format(s=s), text.format(s=s),
                  status(diag="smtp;550 5.1.1 User unknown", mta="mx.example.net"),
                  original_message(mid, subject=s), own=f"<ex2003ndr{n}@mx.example.net>",
                  extra_headers="X-MS-Exchange-Message-Is-Ndr:\nContent-Class: urn:content-classes:dsn\n", boundary="----_=_NextPart_000_01C7A2B3.4D5E6F70"), crlf=True)

# Exchange 5.5-era plain text NDR without a report: the original attached as message/rfc822.
mid = ids("ex55", 0)
sample("exchange-2003", "exchange55-plain", "dsn", mid,
       "From: System Administrator <postmaster@example.net>\nTo: alice@example.com\nSubject: Undeliverable: Minutes\n"
       "Date: Mon, 12 Jan 2026 09:15:00 +0100\nMessage-ID: <ex55plain@example.net>\nMIME-Version: 1.0\nX-MS-Embedded-Report:\n"
       "Content-Type: multipart/mixed;\n\tboundary=\"----_=_NextPart_000_01BF1234.56789ABC\"\n\n"
       "------_=_NextPart_000_01BF1234.56789ABC\nContent-Type: text/plain;\n\tcharset=\"iso-8859-1\"\n\n"
       "Your message\n\n  To:      Bob\n  Subject: Minutes\n  Sent:    Mon, 12 Jan 2026 09:14:01 +0100\n\n"
       "did not reach the following recipient(s):\n\nbob@example.net on Mon, 12 Jan 2026 09:15:00 +0100\n"
       "    The recipient name is not recognized\n\tThe MTS-ID of the original message is: c=US;a= ;p=Example;l=EXCH01-260112081401Z-12\n"
       "    MSEXCH:IMS:Example:Site:EXCH01 0 (000C05A6) Unknown Recipient\n\n"
       "------_=_NextPart_000_01BF1234.56789ABC\nContent-Type: message/rfc822\n\n" + original_message(mid, subject="Minutes") +
       "\n------_=_NextPart_000_01BF1234.56789ABC--\n", crlf=True)

# ---------------------------------------------------------------- Exchange 2010/2013/2016 on premises, localized
EX2010 = {
    "en": ("Undeliverable: {s}", "Delivery has failed to these recipients or groups:\n\nBob (bob@example.net)\nThe e-mail address you entered couldn't be found. Please check the recipient's e-mail address and try to resend the message. If the problem continues, please contact your helpdesk.\n\n\n\n\n\n\nDiagnostic information for administrators:\n\nGenerating server: EXCH01.example.net\n\nbob@example.net\n#550 5.1.1 RESOLVER.ADR.RecipNotFound; not found ##\n\nOriginal message headers:\n\n{h}"),
    "de": ("Unzustellbar: {s}", "Die Zustellung an folgende Empfänger oder Gruppen ist fehlgeschlagen:\n\nBob (bob@example.net)\nDie eingegebene E-Mail-Adresse wurde nicht gefunden. Überprüfen Sie die E-Mail-Adresse des Empfängers, und senden Sie die Nachricht erneut.\n\n\n\n\n\nDiagnoseinformationen für Administratoren:\n\nGenerierender Server: EXCH01.example.net\n\nbob@example.net\n#550 5.1.1 RESOLVER.ADR.RecipNotFound; not found ##\n\nUrsprüngliche Nachrichtenkopfzeilen:\n\n{h}"),
    "fr": ("Non remis : {s}", "La remise aux destinataires ou groupes suivants a échoué :\n\nBob (bob@example.net)\nL'adresse de messagerie que vous avez entrée est introuvable. Vérifiez l'adresse de messagerie du destinataire et essayez de renvoyer le message.\n\n\n\n\n\nInformations de diagnostic pour les administrateurs :\n\nServeur de génération : EXCH01.example.net\n\nbob@example.net\n#550 5.1.1 RESOLVER.ADR.RecipNotFound; not found ##\n\nEn-têtes de message d'origine :\n\n{h}"),
    "es": ("No se puede entregar: {s}", "Error al entregar el mensaje a estos destinatarios o grupos:\n\nBob (bob@example.net)\nNo se encontró la dirección de correo electrónico que especificó. Compruebe la dirección de correo electrónico del destinatario e intente volver a enviar el mensaje.\n\n\n\n\n\nInformación de diagnóstico para administradores:\n\nServidor de generación: EXCH01.example.net\n\nbob@example.net\n#550 5.1.1 RESOLVER.ADR.RecipNotFound; not found ##\n\nEncabezados del mensaje original:\n\n{h}"),
    "it": ("Non recapitabile: {s}", "Recapito non riuscito per i destinatari o gruppi seguenti:\n\nBob (bob@example.net)\nImpossibile trovare l'indirizzo di posta elettronica immesso. Controllare l'indirizzo di posta elettronica del destinatario e provare a inviare di nuovo il messaggio.\n\n\n\n\n\nInformazioni di diagnostica per gli amministratori:\n\nServer di generazione: EXCH01.example.net\n\nbob@example.net\n#550 5.1.1 RESOLVER.ADR.RecipNotFound; not found ##\n\nIntestazioni messaggio originale:\n\n{h}"),
    "pt": ("Não é possível entregar: {s}", "Falha na entrega para estes destinatários ou grupos:\n\nBob (bob@example.net)\nO endereço de email que você inseriu não foi encontrado. Verifique o endereço de email do destinatário e tente reenviar a mensagem.\n\n\n\n\n\nInformações de diagnóstico para administradores:\n\nServidor de geração: EXCH01.example.net\n\nbob@example.net\n#550 5.1.1 RESOLVER.ADR.RecipNotFound; not found ##\n\nCabeçalhos da mensagem original:\n\n{h}"),
    "nl": ("Onbestelbaar: {s}", "Bezorging is mislukt voor deze ontvangers of groepen:\n\nBob (bob@example.net)\nHet ingevoerde e-mailadres is niet gevonden. Controleer het e-mailadres van de ontvanger en probeer het bericht opnieuw te verzenden.\n\n\n\n\n\nDiagnostische gegevens voor beheerders:\n\nGenererende server: EXCH01.example.net\n\nbob@example.net\n#550 5.1.1 RESOLVER.ADR.RecipNotFound; not found ##\n\nOorspronkelijke berichtkoppen:\n\n{h}"),
    "ja": ("配信不能: {s}", "次の受信者またはグループへの配信に失敗しました:\n\nBob (bob@example.net)\n入力した電子メール アドレスが見つかりませんでした。受信者の電子メール アドレスを確認して、メッセージを再送信してください。\n\n\n\n\n\n管理者向け診断情報:\n\n生成サーバー: EXCH01.example.net\n\nbob@example.net\n#550 5.1.1 RESOLVER.ADR.RecipNotFound; not found ##\n\n元のメッセージ ヘッダー:\n\n{h}"),
    "ru": ("Недоставляемое: {s}", "Не удалось доставить сообщение следующим получателям или группам:\n\nBob (bob@example.net)\nНе удалось найти введенный адрес электронной почты. Проверьте адрес электронной почты получателя и повторите отправку сообщения.\n\n\n\n\n\nДиагностические сведения для администраторов:\n\nСоздающий сервер: EXCH01.example.net\n\nbob@example.net\n#550 5.1.1 RESOLVER.ADR.RecipNotFound; not found ##\n\nЗаголовки исходного сообщения:\n\n{h}"),
}
for n, (lang, (subj, text)) in enumerate(EX2010.items()):
    mid = ids("ex2010", n)
    s = "Quarterly report"
    h = headers_only(mid, subject=s)
    html = "<html><body><p><b><font color=\"#000066\" size=\"3\" face=\"Arial\">" + text.split("\n")[0] + "</font></b></p></body></html>"
    own = f"<ex2010ndr{n}@EXCH01.example.net>"
    body = (f"From: Microsoft Exchange <MicrosoftExchange329e71ec88ae4615bbc36ab6ce41109e@example.net>\nTo: alice@example.com\n"
            f"Subject: {subj.format(s=s)}\nDate: Mon, 12 Jan 2026 09:15:00 +0100\nMessage-ID: {own}\nContent-Language: {lang}\n"
            f"X-MS-Exchange-Message-Is-Ndr:\nMIME-Version: 1.0\nContent-Type: multipart/report; report-type=delivery-status;\n\tboundary=\"_000_ex2010_\"\n\n"
            f"--_000_ex2010_\nContent-Type: multipart/alternative; boundary=\"_001_ex2010_\"\n\n"
            f"--_001_ex2010_\nContent-Type: text/plain; charset=\"utf-8\"\nContent-Transfer-Encoding: 8bit\n\n{text.format(s=s, h=h)}\n"
            f"--_001_ex2010_\nContent-Type: text/html; charset=\"utf-8\"\n\n{html}\n--_001_ex2010_--\n\n"
            f"--_000_ex2010_\nContent-Type: message/delivery-status\n\n{status(diag='smtp;550 5.1.1 RESOLVER.ADR.RecipNotFound; not found', mta='EXCH01.example.net')}\n"
            f"--_000_ex2010_\nContent-Type: text/rfc822-headers\n\n{h}\n--_000_ex2010_--\n")
    sample("exchange-2010", f"exchange2010-{lang}", "dsn", mid, body, crlf=True)

# ---------------------------------------------------------------- Microsoft 365 / Outlook.com (newer NDR)
O365 = {
    "en": ("Undeliverable: {s}", "Your message to bob@example.net couldn't be delivered.\nbob wasn't found at example.net.\n\nalice    Office 365    bob\nAction Required                                Recipient\n\nUnknown To address\n\nHow to Fix It\nThe address may be misspelled or may not exist. Try one or more of the following:\n"),
    "de": ("Unzustellbar: {s}", "Ihre Nachricht an bob@example.net konnte nicht übermittelt werden.\nbob wurde unter example.net nicht gefunden.\n\nalice    Office 365    bob\nAktion erforderlich                            Empfänger\n\nUnbekannte An-Adresse\n"),
    "fr": ("Non remis : {s}", "Votre message à bob@example.net n’a pas pu être remis.\nbob est introuvable à example.net.\n\nalice    Office 365    bob\nAction requise                                 Destinataire\n\nAdresse À inconnue\n"),
    "es": ("No se puede entregar: {s}", "No se pudo entregar el mensaje a bob@example.net.\nNo se encontró bob en example.net.\n\nalice    Office 365    bob\nAcción requerida                               Destinatario\n\nDirección Para desconocida\n"),
    "ja": ("配信不能: {s}", "bob@example.net へのメッセージを配信できませんでした。\nbob が example.net に見つかりませんでした。\n\nalice    Office 365    bob\n操作が必要です                                受信者\n"),
    "it": ("Non recapitabile: {s}", "Impossibile recapitare il messaggio a bob@example.net.\nImpossibile trovare bob in example.net.\n\nalice    Office 365    bob\nAzione necessaria                              Destinatario\n"),
}
for n, (lang, (subj, text)) in enumerate(O365.items()):
    mid = f"<AM0PR02MB{5000 + n}A1B2C3D4E5F6A7B8C9D0E1F2A3B4C@AM0PR02MB{5000 + n}.eurprd02.prod.outlook.com>"
    s = "Quarterly report"
    h = headers_only(mid, subject=s)
    diag = "\n\nDiagnostic information for administrators:\n\nGenerating server: AM0PR02MB5000.eurprd02.prod.outlook.com\n\nbob@example.net\nRemote Server returned '550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup'\n\nOriginal message headers:\n\n" + h
    own = f"<{n}c2f1e7a-ndr-o365@AM0PR02MB5000.eurprd02.prod.outlook.com>"
    family = "office365" if n % 2 == 0 else "outlook-com"
    frm = "Microsoft Outlook <postmaster@example.onmicrosoft.com>" if family == "office365" else "postmaster@outlook.com"
    body = (f"From: {frm}\nTo: alice@example.com\nSubject: {subj.format(s=s)}\nDate: Mon, 12 Jan 2026 08:15:00 +0000\nMessage-ID: {own}\n"
            f"X-MS-Exchange-Message-Is-Ndr:\nX-MS-PublicTrafficType: Email\nMIME-Version: 1.0\n"
            f"Content-Type: multipart/report; report-type=delivery-status;\n\tboundary=\"_000_o365_\"\n\n"
            f"--_000_o365_\nContent-Type: multipart/alternative; boundary=\"_002_o365_\"\n\n"
            f"--_002_o365_\nContent-Type: text/plain; charset=\"utf-8\"\nContent-Transfer-Encoding: base64\n\n"
            + "\n".join(textwrap.wrap(base64.b64encode((text + diag).encode()).decode(), 76)) +
            f"\n\n--_002_o365_\nContent-Type: text/html; charset=\"utf-8\"\n\n<html><body>{text.splitlines()[0]}</body></html>\n--_002_o365_--\n\n"
            f"--_000_o365_\nContent-Type: message/delivery-status\n\n{status(code='5.1.10', diag='smtp;550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup', mta='AM0PR02MB5000.eurprd02.prod.outlook.com')}\n"
            f"--_000_o365_\nContent-Type: message/rfc822\n\n{original_message(mid, subject=s)}\n--_000_o365_--\n")
    sample(family, f"{family}-{lang}", "dsn", mid, body, crlf=True)

# ---------------------------------------------------------------- Gmail
GMAIL = {
    "en": ("Delivery Status Notification (Failure)", "** Address not found **\n\nYour message wasn't delivered to bob@example.net because the address couldn't be found, or is unable to receive mail.\n\nLearn more here: https://support.google.com/mail/?p=NoSuchUser\n\nThe response was:\n\n550 5.1.1 The email account that you tried to reach does not exist."),
    "de": ("Delivery Status Notification (Failure)", "** Adresse nicht gefunden **\n\nIhre Nachricht wurde nicht an bob@example.net zugestellt, weil die Adresse nicht gefunden wurde oder keine E-Mails empfangen kann.\n\nDie Antwort war:\n\n550 5.1.1 The email account that you tried to reach does not exist."),
    "fr": ("Delivery Status Notification (Failure)", "** Adresse introuvable **\n\nVotre message n'a pas été distribué à bob@example.net, car l'adresse est introuvable ou ne peut pas recevoir d'e-mails.\n\nLa réponse était :\n\n550 5.1.1 The email account that you tried to reach does not exist."),
    "es": ("Delivery Status Notification (Failure)", "** No se ha encontrado la dirección **\n\nTu mensaje no se ha entregado a bob@example.net porque no se ha encontrado la dirección o no puede recibir correo.\n\nLa respuesta ha sido:\n\n550 5.1.1 The email account that you tried to reach does not exist."),
    "ja": ("Delivery Status Notification (Failure)", "** アドレスが見つかりません **\n\nメールは bob@example.net に配信されませんでした。アドレスが見つからないか、メールを受信できないアドレスです。\n\n応答:\n\n550 5.1.1 The email account that you tried to reach does not exist."),
    "delay": ("Delivery Status Notification (Delay)", "** Delivery incomplete **\n\nThere was a temporary problem delivering your message to bob@example.net. Gmail will retry for 46 more hours. You'll be notified if the delivery fails permanently.\n\nThe response was:\n\n451 4.3.0 Temporary lookup failure"),
}
for n, (lang, (subj, text)) in enumerate(GMAIL.items()):
    mid = f"<CAF8kWq1zX9pQ2+Lr0s{n}Jx7Yh3Vb{n}aGmQ@mail.gmail.com>"
    s = "Quarterly report"
    body = (f"Delivered-To: alice@example.com\nReturn-Path: <>\nFrom: Mail Delivery Subsystem <mailer-daemon@googlemail.com>\nTo: alice@example.com\n"
            f"Auto-Submitted: auto-replied\nSubject: {subj}\nReferences: {mid}\nIn-Reply-To: {mid}\nX-Failed-Recipients: bob@example.net\n"
            f"Message-ID: <5f1e{n}c0a.050a0220.3d2b1f.0000.GMR@mx.google.com>\nDate: Mon, 12 Jan 2026 00:15:01 -0800 (PST)\nMIME-Version: 1.0\n"
            f"Content-Type: multipart/report; boundary=\"000000000000gmail{n}\"; report-type=delivery-status\n\n"
            f"--000000000000gmail{n}\nContent-Type: multipart/related; boundary=\"000000000000rel{n}\"\n\n"
            f"--000000000000rel{n}\nContent-Type: multipart/alternative; boundary=\"000000000000alt{n}\"\n\n"
            f"--000000000000alt{n}\nContent-Type: text/plain; charset=\"UTF-8\"\n\n\n{text}\n\n"
            f"--000000000000alt{n}\nContent-Type: text/html; charset=\"UTF-8\"\n\n<html><body>{text.splitlines()[0]}</body></html>\n--000000000000alt{n}--\n"
            f"--000000000000rel{n}--\n"
            f"--000000000000gmail{n}\nContent-Type: message/delivery-status\n\n{status(mta='mx.google.com', code='4.3.0' if lang == 'delay' else '5.1.1', action='delayed' if lang == 'delay' else 'failed')}\n"
            f"--000000000000gmail{n}\nContent-Type: message/rfc822\n\n{original_message(mid, subject=s)}\n--000000000000gmail{n}--\n")
    sample("gmail", f"gmail-{lang}", "dsn", mid, body)

# Gmail before 2014: plain text, the original's header inlined after a separator.
mid = "<CAOldGmail1234567890abcdefXYZ@mail.gmail.com>"
sample("gmail", "gmail-2012-plain", "dsn", mid,
       "From: Mail Delivery Subsystem <mailer-daemon@googlemail.com>\nTo: alice@example.com\nSubject: Delivery Status Notification (Failure)\n"
       "Message-ID: <20f6ae6a5a1b2c3d@mx.google.com>\nDate: Tue, 10 Jan 2012 09:15:00 +0000\nContent-Type: text/plain; charset=ISO-8859-1\n\n"
       "This is an automatically generated Delivery Status Notification\n\nDelivery to the following recipient failed permanently:\n\n     bob@example.net\n\n"
       "Technical details of permanent failure:\nGoogle tried to deliver your message, but it was rejected by the recipient domain. We recommend contacting the other email provider for further information about the cause of this error. The error that the other server returned was: 550 550 5.1.1 User unknown (state 14).\n\n"
       "----- Original message -----\n\n" + original_message(mid) )

# ---------------------------------------------------------------- Yahoo! (qmail-derived), AOL, iCloud, SES
for n, lang in enumerate(["old", "new"]):
    mid = ids("yahoo", n)
    if lang == "old":
        text = ("Sorry, we were unable to deliver your message to the following address.\n\n<bob@example.net>:\n"
                "Remote host said: 550 5.1.1 <bob@example.net>... User unknown [RCPT_TO]\n\n--- Below this line is a copy of the message.\n\n" + original_message(mid))
        sample("yahoo", "yahoo-qmail-style", "dsn", mid,
               "From: MAILER-DAEMON@yahoo.com\nTo: alice@example.com\nSubject: Failure Notice\nDate: Mon, 12 Jan 2026 08:15:00 +0000\nMessage-ID: <yahoo-ndr-1@mta1.mail.yahoo.com>\n\n" + text)
    else:
        sample("yahoo", "yahoo-report", "dsn", mid,
               report("Mail Delivery Subsystem <MAILER-DAEMON@yahoo.com>", "Delivery Status Notification (Failure)",
                      "Sorry, we were unable to deliver your message to the following address.\n\n<bob@example.net>:\n554: delivery error: dd This user doesn't have a yahoo.com account (bob@example.net) [0] - mta1.mail.yahoo.com",
                      status(diag="smtp; 554 delivery error: dd This user doesn't have a yahoo.com account", mta="mta1.mail.yahoo.com"),
                      original_message(mid), own="<yahoo-ndr-2@mta1.mail.yahoo.com>"))

mid = ids("aol", 0)
sample("aol", "aol-sendmail-style", "dsn", mid,
       "From: Mail Delivery Subsystem <MAILER-DAEMON@aol.com>\nTo: alice@example.com\nSubject: Returned mail: User unknown\nDate: Mon, 12 Jan 2026 03:15:00 -0500 (EST)\n"
       "Message-ID: <200601120815.k0C8F0Aa012345@omr-m01.mx.aol.com>\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"k0C8F0Aa012345.1137053700/omr-m01.mx.aol.com\"\n\n"
       "--k0C8F0Aa012345.1137053700/omr-m01.mx.aol.com\n\nThe original message was received at Mon, 12 Jan 2026 03:14:59 -0500 (EST)\nfrom mx.example.com [192.0.2.1]\n\n"
       "   ----- The following addresses had permanent fatal errors -----\n<bob@aol.com>\n\n   ----- Transcript of session follows -----\n... while talking to air-xa01.mail.aol.com.:\n>>> RCPT To:<bob@aol.com>\n<<< 550 MAILBOX NOT FOUND\n550 <bob@aol.com>... User unknown\n\n"
       "--k0C8F0Aa012345.1137053700/omr-m01.mx.aol.com\nContent-Type: message/rfc822\n\n" + original_message(mid, to="bob@aol.com") + "\n--k0C8F0Aa012345.1137053700/omr-m01.mx.aol.com--\n")
mid = ids("aol", 1)
sample("aol", "aol-classic-text", "dsn", mid,
       "From: Mail Delivery Subsystem <MAILER-DAEMON@aol.com>\nTo: alice@example.com\nSubject: Undeliverable: Quarterly report\nDate: Mon, 12 Jan 2026 03:15:00 -0500\nMessage-ID: <aolclassic1@aol.com>\n\n"
       "Your mail to the following recipients could not be delivered because they are not accepting mail from alice@example.com:\n\tbob\n\n"
       "----- Original message follows -----\n" + original_message(mid, to="bob@aol.com"))

mid = ids("icloud", 0)
sample("icloud", "icloud-report", "dsn", mid,
       report("Mail Delivery System <MAILER-DAEMON@ms11p00im-qufv17081101.me.com>", "Undelivered Mail Returned to Sender",
              "This is the mail system at host ms11p00im-qufv17081101.me.com.\n\nI'm sorry to have to inform you that your message could not\nbe delivered to one or more recipients. It's attached below.\n\n<bob@icloud.com>: user unknown",
              status(rcpt="bob@icloud.com", mta="ms11p00im-qufv17081101.me.com"), original_message(mid, to="bob@icloud.com"), own="<icloudndr1@me.com>"))

for n, kind in enumerate(["headers", "message"]):
    mid = f"<01020189a1b2c3d4-{n}e5f6a7b8-c9d0-4e1f-a2b3-c4d5e6f7a8b9-000000@eu-west-1.amazonses.com>"
    sample("amazon-ses", f"ses-{kind}", "dsn", mid,
           report("MAILER-DAEMON@amazonses.com", "Delivery Status Notification (Failure)",
                  "An error occurred while trying to deliver the mail to the following recipients:\nbob@example.net",
                  status(mta="a1-2.smtp-out.eu-west-1.amazonses.com", diag="smtp; 550 5.1.1 user unknown"),
                  headers_only(mid) if kind == "headers" else original_message(mid),
                  attached_type="text/rfc822-headers" if kind == "headers" else "message/rfc822",
                  own=f"<0102018ses{n}@email.amazonses.com>"))

# ---------------------------------------------------------------- Groupware and Windows servers
mid = ids("imail", 0)
sample("imail", "imail-unknown-user", "dsn", mid,
       "From: postmaster@mail.example.net\nTo: alice@example.com\nSubject: Undeliverable Mail\nDate: Mon, 12 Jan 2026 09:15:00 +0100\nX-Mailer: <SMTP32 v8.22>\nMessage-Id: <200601120915.SM01234@mail.example.net>\n\n"
       "Unknown user: bob@example.net\n\nRCPT TO generated following response:\n550 5.1.1 <bob@example.net>... User unknown\n\n\nOriginal message follows.\n\n" + original_message(mid))
mid = ids("imail", 1)
sample("imail", "imail-connect-failure", "dsn", mid,
       "From: postmaster@mail.example.net\nTo: alice@example.com\nSubject: Undeliverable Mail\nDate: Mon, 12 Jan 2026 09:15:00 +0100\nX-Mailer: <SMTP32 v8.22>\nMessage-Id: <200601120915.SM05678@mail.example.net>\n\n"
       "Unable to deliver message to the following recipients, due to being unable to connect successfully to the destination mail server.\n\nbob@example.net\n\n\nOriginal message follows.\n\n" + original_message(mid))

mid = ids("mdaemon", 0)
sample("mdaemon", "mdaemon-permanent", "dsn", mid,
       "From: MDaemon@mail.example.net\nTo: alice@example.com\nSubject: Permanent Delivery Failure\nDate: Mon, 12 Jan 2026 09:15:00 +0100\nMessage-ID: <MDAEMON-F200601120915.AA1515015md50000000001@mail.example.net>\n"
       "X-MDaemon-Deliver-To: alice@example.com\nX-Return-Path: <>\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"0115-0915-MDaemon\"\n\n"
       "--0115-0915-MDaemon\nContent-Type: text/plain; charset=US-ASCII\n\nThe attached message had PERMANENT fatal delivery errors!\n\n"
       "After one or more unsuccessful delivery attempts the attached message has been removed from the mail queue on this server.  The number and frequency of delivery attempts are determined by local configuration parameters.\n\n"
       "YOUR MESSAGE WAS NOT DELIVERED TO ONE OR MORE RECIPIENTS!\n\n--- Session Transcript ---\n Mon 2026-01-12 09:15:00: Parsing message <mail.example.net\\pd50000000001.msg>\n Mon 2026-01-12 09:15:00: *  To: bob@example.net\n"
       " Mon 2026-01-12 09:15:00: --> RCPT To:<bob@example.net>\n Mon 2026-01-12 09:15:00: <-- 550 5.1.1 User unknown\n--- End Transcript ---\n\n"
       "--0115-0915-MDaemon\nContent-Type: message/rfc822\n\n" + original_message(mid) + "\n--0115-0915-MDaemon--\n")

mid = ids("groupwise", 0)
sample("groupwise", "groupwise-undeliverable", "dsn", mid,
       "From: Mail Delivery System <postmaster@gw.example.net>\nTo: alice@example.com\nSubject: Message status - undeliverable\nDate: Mon, 12 Jan 2026 09:15:00 +0100\nMessage-ID: <s5a1b2c3.001@gw.example.net>\nMIME-Version: 1.0\n"
       "Content-Type: multipart/mixed; boundary=\"=__Part1A2B3C4D.0__=\"\n\n"
       "--=__Part1A2B3C4D.0__=\nContent-Type: text/plain; charset=US-ASCII\n\nThe message that you sent was undeliverable to the following:\n\tbob (user not found)\n\n"
       "Possibly truncated original message follows:\n\n--=__Part1A2B3C4D.0__=\nContent-Type: message/rfc822\n\n" + original_message(mid) + "\n--=__Part1A2B3C4D.0__=--\n")

DOMINO = {
    "en": ("DELIVERY FAILURE: User bob (bob@example.net) not listed in Domino Directory", "Your message\n\n  Subject: Quarterly report\n\nwas not delivered to:\n\n  bob@example.net\n\nbecause:\n\n  User bob (bob@example.net) not listed in Domino Directory\n"),
    "de": ("Zustellungsfehler: Benutzer bob (bob@example.net) nicht im Domino-Verzeichnis aufgeführt", "Ihre Nachricht\n\n  Betreff: Quarterly report\n\nwurde nicht zugestellt an:\n\n  bob@example.net\n\nweil:\n\n  Benutzer bob (bob@example.net) nicht im Domino-Verzeichnis aufgeführt\n"),
    "fr": ("ÉCHEC DE LA REMISE : L'utilisateur bob (bob@example.net) n'est pas répertorié", "Votre message\n\n  Objet : Quarterly report\n\nn'a pas été remis à :\n\n  bob@example.net\n\nparce que :\n\n  L'utilisateur bob (bob@example.net) n'est pas répertorié dans l'annuaire Domino\n"),
}
for n, (lang, (subj, text)) in enumerate(DOMINO.items()):
    mid = ids("domino", n)
    sample("domino", f"domino-{lang}", "dsn", mid,
           f"From: Postmaster@domino.example.net\nTo: alice@example.com\nSubject: {subj}\nDate: Mon, 12 Jan 2026 09:15:00 +0100\n"
           f"Message-ID: <OF5A2B3C4D.{n}E2F3A4B-ON88257712.005E1F2A@domino.example.net>\nX-MIMETrack: Itemize by SMTP Server on SMTP01/Example(Release 9.0.1FP8|January 12, 2026)\n"
           f"MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"=_mixed 0049D0A2C1257D86_=\"\n\n"
           f"--=_mixed 0049D0A2C1257D86_=\nContent-Type: text/plain; charset=\"UTF-8\"\n\n{text}\n"
           f"--=_mixed 0049D0A2C1257D86_=\nContent-Type: message/rfc822\n\n{original_message(mid)}\n--=_mixed 0049D0A2C1257D86_=--\n")

mid = ids("communigate", 0)
sample("communigate", "communigate-quota", "dsn", mid,
       "From: MAILER-DAEMON@cgp.example.net\nTo: alice@example.com\nSubject: Undeliverable mail: Failed to deliver to '<bob@cgp.example.net>'\nDate: Mon, 12 Jan 2026 09:15:00 +0100\nMessage-ID: <cgp-ndr-1@cgp.example.net>\nMIME-Version: 1.0\n"
       "Content-Type: multipart/report; boundary=\"_===1234567====cgp.example.net===_\"\n\n"
       "--_===1234567====cgp.example.net===_\nContent-Type: text/plain; charset=\"utf-8\"\n\nFailed to deliver to '<bob@cgp.example.net>'\nLOCAL module(account bob) reports:\n account is full (disk quota exceeded)\n\n"
       "--_===1234567====cgp.example.net===_\nContent-Type: message/rfc822\n\n" + original_message(mid, to="bob@cgp.example.net") + "\n--_===1234567====cgp.example.net===_--\n")

mid = ids("kerio", 0)
sample("kerio", "kerio-report", "dsn", mid,
       report("Mail Delivery Subsystem <postmaster@kerio.example.net>", "Undeliverable: Quarterly report",
              "This is a delivery status notification, automatically generated by MTA kerio.example.net on Mon, 12 Jan 2026 09:15:00 +0100\n\nRegarding recipient(s) : bob@example.net\nDelivery status : Failed. Message could not be delivered to domain <example.net>.\nFailed while initiating the protocol. <[192.0.2.25]: Remote host said: 550 5.1.1 User unknown>\nMTA Response :550 5.1.1 User unknown\n\nThe original message headers are included as attachment.",
              status(mta="kerio.example.net"), headers_only(mid), attached_type="text/rfc822-headers", own="<kerio-ndr-1@kerio.example.net>"))

sample("hmailserver", "hmailserver-undeliverable", "dsn", "none",
       "From: mailer-daemon@mail.example.net\nTo: alice@example.com\nSubject: Message undeliverable: Quarterly report\nDate: Mon, 12 Jan 2026 09:15:00 +0100\nMessage-ID: <HMS-1A2B3C@mail.example.net>\n\n"
       "Your message did not reach some or all of the intended recipients.\n\n   Sent: Mon, 12 Jan 2026 09:14:01 +0100\n   Subject: Quarterly report\n\n"
       "The following recipient(s) could not be reached:\n\nbob@example.net\n   Error Type: SMTP\n   Remote server (192.0.2.25) issued an error.\n   hMailServer sent: RCPT TO:<bob@example.net>\n   Remote server replied: 550 5.1.1 <bob@example.net>: Recipient address rejected: User unknown\n\nhMailServer\n")

mid = ids("zimbra", 0)
sample("zimbra", "zimbra-postfix", "dsn", mid,
       report("MAILER-DAEMON@zimbra.example.net (Mail Delivery System)", "Undelivered Mail Returned to Sender",
              "This is the mail system at host zimbra.example.net.\n\nI'm sorry to have to inform you that your message could not\nbe delivered to one or more recipients. It's attached below.\n\n                   The mail system\n\n<bob@example.net>: host mx.example.net[192.0.2.25] said: 552 5.2.2 Mailbox full (in reply to RCPT TO command)",
              status(code="5.2.2", diag="smtp; 552 5.2.2 Mailbox full", mta="zimbra.example.net"), original_message(mid), own="<20260112081500.ZIM@zimbra.example.net>"))

# ---------------------------------------------------------------- qmail and localised variants
mid = ids("qmail", 0)
sample("qmail", "qmail-german", "dsn", mid,
       "From: MAILER-DAEMON@mail.example.de\nTo: alice@example.com\nSubject: failure notice\nDate: 12 Jan 2026 08:15:00 -0000\nMessage-ID: <qmail-de-1@mail.example.de>\n\n"
       "Hallo. Dies ist das qmail-send Programm auf mail.example.de.\nIch konnte Ihre Nachricht leider nicht an die folgenden Adressen zustellen.\nDies ist ein permanenter Fehler; ich habe aufgegeben.\n\n<bob@example.de>:\nSorry, no mailbox here by that name. (#5.1.1)\n\n"
       "--- Unterhalb dieser Zeile folgt eine Kopie der Nachricht.\n\n" + original_message(mid, to="bob@example.de"))
mid = ids("qmail", 1)
sample("qmail", "qmail-headers-only", "dsn", mid,
       "From: MAILER-DAEMON@mail.example.org\nTo: alice@example.com\nSubject: failure notice\nDate: 12 Jan 2026 08:15:00 -0000\n\n"
       "Hi. This is the qmail-send program at mail.example.org.\nI'm afraid I wasn't able to deliver your message to the following addresses.\nThis is a permanent error; I've given up. Sorry it didn't work out.\n\n<bob@example.org>:\nThis address no longer accepts mail. (#5.1.1)\n\n"
       "--- Enclosed are the original headers of the message.\n\n" + headers_only(mid, to="bob@example.org"))
mid = ids("qmail", 2)
sample("qmail", "qmail-delay", "dsn", mid,
       "From: MAILER-DAEMON@mail.example.org\nTo: alice@example.com\nSubject: failure notice\nDate: 19 Jan 2026 08:15:00 -0000\n\n"
       "Hi. This is the qmail-send program at mail.example.org.\nI'm afraid I wasn't able to deliver your message to the following addresses.\nThis is a permanent error; I've given up. Sorry it didn't work out.\n\n<bob@example.org>:\n192.0.2.25 does not like recipient.\nRemote host said: 450 4.2.1 Mailbox temporarily unavailable\nI'm not going to try again; this message has been in the queue too long.\n\n"
       "--- Below this line is a copy of the message.\n\n" + original_message(mid, to="bob@example.org"))

# ---------------------------------------------------------------- "simple" prose bounces, several languages
PROSE = {
    "en-fatal": ("Returned mail: User unknown", "The following addresses had permanent fatal errors:\n\n    bob@example.net\n\nThe message could not be delivered. This is a permanent error.\n"),
    "en-recipients": ("Delivery failure", "Delivery to the following recipients failed.\n\n       bob@example.net\n"),
    "en-permanent": ("Mail delivery failed", "This is a permanent error. The following address(es) failed:\n\n  bob@example.net\n    mailbox unavailable\n"),
    "de": ("Unzustellbar: Quarterly report", "Ihre Nachricht konnte nicht zugestellt werden.\nDie Zustellung an folgende Empfänger ist fehlgeschlagen:\n\n  bob@example.net\n\nDies ist ein permanenter Fehler.\n"),
    "fr": ("Non distribuable : Quarterly report", "Votre message n'a pas pu être remis aux destinataires suivants :\n\n  bob@example.net\n\nIl s'agit d'une erreur permanente.\n"),
    "es": ("Error de entrega del correo", "Su mensaje no pudo ser entregado a los siguientes destinatarios:\n\n  bob@example.net\n\nEste es un error permanente.\n"),
    "it": ("Mancato recapito del messaggio", "Non è stato possibile recapitare il messaggio ai seguenti destinatari:\n\n  bob@example.net\n\nSi tratta di un errore permanente.\n"),
    "pt": ("Falha na entrega da mensagem", "Sua mensagem não pôde ser entregue aos seguintes destinatários:\n\n  bob@example.net\n\nEste é um erro permanente.\n"),
    "nl": ("Onbestelbaar bericht", "Uw bericht kon niet worden afgeleverd bij de volgende ontvangers:\n\n  bob@example.net\n\nDit is een permanente fout.\n"),
    "ja": ("配信エラー: Quarterly report", "次の宛先へメールを配信できませんでした。\n\n  bob@example.net\n\n宛先不明のため送信できませんでした。\n"),
    "ru": ("Недоставленное сообщение", "Ваше сообщение не может быть доставлено следующим получателям:\n\n  bob@example.net\n\nЭто постоянная ошибка.\n"),
    "pl": ("Niedostarczalne: Quarterly report", "Wiadomość nie mogła zostać dostarczona do następujących odbiorców:\n\n  bob@example.net\n"),
}
# Each language in a different form of returned copy, as real MTAs write them.
FORMS = ["inline", "no-blank-line", "rfc822-headers", "indented", "quoted", "text-rfc822-header", "attached", "inline", "attached", "indented", "rfc822-headers", "inline"]
for n, ((lang, (subj, text)), form) in enumerate(zip(PROSE.items(), FORMS)):
    mid = ids("prose", n)
    head = (f"From: Mail Delivery System <MAILER-DAEMON@mx.example.net>\nTo: alice@example.com\nSubject: {subj}\n"
            f"Date: Mon, 12 Jan 2026 09:15:00 +0100\nMessage-ID: <prose-{n}@mx.example.net>\nMIME-Version: 1.0\n")
    orig = original_message(mid)
    if form == "inline":
        body = head + "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n" + text + "\n------ Original message ------\n\n" + orig
    elif form == "indented":
        body = head + "Content-Type: text/plain; charset=utf-8\n\n" + text + "\n   Original message header:\n\n" + textwrap.indent(headers_only(mid), "    ")
    elif form == "quoted":
        body = head + "Content-Type: text/plain; charset=utf-8\n\n" + text + "\n" + textwrap.indent(headers_only(mid), "> ")
    else:
        ctype = {"no-blank-line": "message/rfc822", "rfc822-headers": "message/rfc822-headers", "text-rfc822-header": "text/rfc822-header", "attached": "message/rfc822"}[form]
        copy = headers_only(mid) if "header" in form else orig
        sep = "" if form == "no-blank-line" else "\n"
        # no-blank-line: the part's header runs straight into the copy's, and the text part too.
        text_part = f"Content-Type: text/plain; charset=utf-8\n{sep}{text}" if form == "no-blank-line" else f"Content-Type: text/plain; charset=utf-8\n\n{text}"
        body = (head + "Content-Type: multipart/mixed; boundary=\"b1b2b3\"\n\nThis is a multi-part message in MIME format.\n\n"
                f"--b1b2b3\n{text_part}\n--b1b2b3\nContent-Type: {ctype}\n{sep}{copy}\n--b1b2b3--\n")
    sample("prose", f"prose-{lang}-{form}", "dsn", mid, body)

# A bounce re-sent by list software: regular sender, list headers, a DSN by content.
mid = ids("list", 0)
sample("list-resent", "mailman-resent-report", "dsn", mid,
       report("Mail Delivery System <MAILER-DAEMON@mx.example.net>", "Undelivered Mail Returned to Sender",
              "This is the mail system at host mx.example.net.\n\nI'm sorry to have to inform you that your message could not\nbe delivered to one or more recipients.\n\n<bob@example.net>: user unknown",
              status(), original_message(mid), own="<list-resent-1@mx.example.net>",
              extra_headers="Sender: \"staff\" <staff-bounces@lists.example.com>\nList-Id: Staff <staff.lists.example.com>\nErrors-To: staff-bounces@lists.example.com\nPrecedence: list\n").replace("From: Mail Delivery System <MAILER-DAEMON@mx.example.net>", "From: staff@lists.example.com"))
mid = ids("list", 1)
sample("list-resent", "list-resent-plain", "dsn", mid,
       "From: Staff list <staff@lists.example.com>\nTo: staff@lists.example.com\nSubject: Undeliverable: Quarterly report\nDate: Mon, 12 Jan 2026 09:16:00 +0100\nMessage-ID: <list-resent-2@lists.example.com>\nList-Id: <staff.lists.example.com>\nPrecedence: list\n\n"
       "Delivery has failed to these recipients or groups:\n\nbob@example.net\nThe e-mail address you entered couldn't be found.\n\nDiagnostic information for administrators:\n\n#550 5.1.1 RESOLVER.ADR.RecipNotFound; not found ##\n\nOriginal message headers:\n\n" + headers_only(mid))

# ---------------------------------------------------------------- automatic replies
for n, (lang, subj) in enumerate([("en", "Automatic reply: Quarterly report"), ("de", "Automatische Antwort: Quarterly report"), ("fr", "Réponse automatique : Quarterly report")]):
    mid = ids("oof", n)
    sample("exchange-oof", f"oof-{lang}", "autoreply", mid,
           f"From: Bob <bob@example.net>\nTo: Alice <alice@example.com>\nSubject: {subj}\nDate: Mon, 12 Jan 2026 09:15:00 +0100\nMessage-ID: <oof{n}@EXCH01.example.net>\n"
           f"In-Reply-To: {mid}\nThread-Topic: Quarterly report\nAuto-Submitted: auto-generated\nX-Auto-Response-Suppress: All\nX-MS-Exchange-Inbox-Rules-Loop: bob@example.net\n"
           f"Content-Type: text/plain; charset=utf-8\n\nI am out of the office until Monday.\n", crlf=True)
mid = ids("mdn", 0)
sample("mdn", "mdn-outlook-no-report-type", "autoreply", mid,
       "From: Bob <bob@example.net>\nTo: alice@example.com\nSubject: Read: Quarterly report\nDate: Mon, 12 Jan 2026 10:00:00 +0100\nMessage-ID: <mdn-o1@example.net>\nMIME-Version: 1.0\n"
       "Content-Type: multipart/report; boundary=\"mdnb\"\n\n--mdnb\nContent-Type: text/plain\n\nYour message was read on Monday, January 12, 2026 10:00:00 AM (UTC+01:00).\n\n"
       f"--mdnb\nContent-Type: message/disposition-notification\n\nReporting-UA: EXCH01.example.net; Microsoft Exchange Server\nFinal-Recipient: rfc822;bob@example.net\nOriginal-Message-ID: {mid}\nDisposition: automatic-action/MDN-sent-automatically; displayed\n--mdnb--\n")
uid = "040000008200E00074C5B7101A82E0080000000010CD0D8C1F43DC01000000000000000010000000A1B2C3D4E5F6"
ical = f"BEGIN:VCALENDAR\nMETHOD:REPLY\nPRODID:Microsoft Exchange Server 2010\nVERSION:2.0\nBEGIN:VEVENT\nATTENDEE;PARTSTAT=ACCEPTED;CN=Resource Room 4:mailto:room4@example.net\nUID:{uid}\nSUMMARY;LANGUAGE=en-US:Accepted: Planning\nDTSTART:20260115T090000Z\nEND:VEVENT\nEND:VCALENDAR\n"
sample("calendar", "resource-auto-accept", "autoreply", "none",
       "From: Room 4 <room4@example.net>\nTo: alice@example.com\nSubject: Accepted: Planning\nDate: Mon, 12 Jan 2026 10:00:00 +0100\nMessage-ID: <calreply1@example.net>\nAuto-Submitted: auto-generated\nMIME-Version: 1.0\n"
       "Content-Type: multipart/alternative; boundary=\"calb\"\n\n--calb\nContent-Type: text/plain\n\nYour meeting was accepted.\n--calb\nContent-Type: text/calendar; charset=\"utf-8\"; method=REPLY\nContent-Transfer-Encoding: base64\n\n"
       + "\n".join(textwrap.wrap(base64.b64encode(ical.encode()).decode(), 76)) + "\n--calb--\n")

# ---------------------------------------------------------------- look-alikes: ordinary mail
L = "lookalike"
sample(L, "newsletter-quoting-headers", "none", "none",
       "From: Mail Tips <news@tips.example.org>\nTo: alice@example.com\nSubject: This week: reading mail headers\nDate: Mon, 12 Jan 2026 07:00:00 +0000\nMessage-ID: <news-2026-02@tips.example.org>\nList-Unsubscribe: <mailto:unsub@tips.example.org>\nPrecedence: bulk\n\n"
       "This week we look at a message's header. Here is one, as your mail program shows it:\n\n" + headers_only("<example-in-newsletter@example.org>") + "\nThe Received lines tell where it came from. When a message could not be delivered, the mail system sends a bounce.\n")
sample(L, "forwarded-message", "none", "none",
       "From: Carol <carol@example.org>\nTo: alice@example.com\nSubject: Fwd: Quarterly report\nDate: Mon, 12 Jan 2026 11:00:00 +0100\nMessage-ID: <fwd-1@example.org>\n\nSee below.\n\n---------- Forwarded message ---------\n" + headers_only("<fwd-orig@example.com>"))
sample(L, "reply-to-a-bounce", "none", "none",
       "From: Dave <dave@example.org>\nTo: alice@example.com\nSubject: Re: Undelivered Mail Returned to Sender\nDate: Mon, 12 Jan 2026 11:00:00 +0100\nMessage-ID: <re-bounce@example.org>\nIn-Reply-To: <bounce-reply-parent@mx.example.net>\n\n"
       "Why did I get this? I never sent that mail.\n\nOn Monday, MAILER-DAEMON wrote:\n> This is the mail system at host mx.example.net.\n> I'm sorry to have to inform you that your message could not\n> be delivered to one or more recipients.\n> <bob@example.net>: user unknown\n")
sample(L, "human-quoting-bounce-inline", "none", "none",
       "From: Erin <erin@example.org>\nTo: helpdesk@example.com\nSubject: mail problem\nDate: Mon, 12 Jan 2026 11:00:00 +0100\nMessage-ID: <erin-1@example.org>\n\n"
       "Hi helpdesk, my mail to Bob could not be delivered, I got this:\n\n> Delivery has failed to these recipients or groups:\n> bob@example.net\n> #550 5.1.1 RESOLVER.ADR.RecipNotFound; not found ##\n\nCan you check?\nErin\n")
for n, (frm, sender) in enumerate([("MAILER-DAEMON@mx.isp.example", "abuse"), ("feedback@fbl.example.net", "fbl"), ("Postmaster <postmaster@isp.example>", "auth")]):
    ftype = "auth-failure" if sender == "auth" else "abuse"
    sample(L, f"arf-{sender}", "none", "none",
           f"From: {frm}\nTo: abuse@example.com\nSubject: FW: Quarterly report\nDate: Mon, 12 Jan 2026 11:00:00 +0100\nMessage-ID: <arf-{n}@isp.example>\nMIME-Version: 1.0\n"
           "Content-Type: multipart/report; report-type=feedback-report;\n\tboundary=\"arfb\"\n\n--arfb\nContent-Type: text/plain\n\nThis is an email abuse report for an email message received from IP 192.0.2.1 on Mon, 12 Jan 2026.\n"
           f"--arfb\nContent-Type: message/feedback-report\n\nFeedback-Type: {ftype}\nUser-Agent: SomeGenerator/1.0\nVersion: 1\nOriginal-Mail-From: <alice@example.com>\nArrival-Date: Mon, 12 Jan 2026 09:14:01 +0100\n"
           f"--arfb\nContent-Type: message/rfc822\n\n{original_message('<reported-' + str(n) + '@example.com>')}\n--arfb--\n")
sample(L, "list-digest", "none", "none",
       "From: staff-request@lists.example.com\nTo: alice@example.com\nSubject: Staff Digest, Vol 12, Issue 3\nDate: Mon, 12 Jan 2026 11:00:00 +0100\nMessage-ID: <digest-12-3@lists.example.com>\nList-Id: <staff.lists.example.com>\nMIME-Version: 1.0\n"
       "Content-Type: multipart/mixed; boundary=\"dig\"\n\n--dig\nContent-Type: text/plain\n\nToday's Topics:\n\n   1. Re: mail could not be delivered (Dave)\n\n--dig\nContent-Type: multipart/digest; boundary=\"dig2\"\n\n--dig2\n\n"
       + original_message("<digest-item@example.org>", subject="Re: mail could not be delivered", body="It was a permanent error on their side.\n") + "\n--dig2--\n--dig--\n")
sample(L, "parcel-delivery-failed", "none", "none",
       "From: Parcel Service <noreply@parcels.example>\nTo: alice@example.com\nSubject: Delivery failure: your parcel 1Z999\nDate: Mon, 12 Jan 2026 11:00:00 +0100\nMessage-ID: <parcel-1@parcels.example>\n\n"
       "We tried to deliver your parcel today, but it could not be delivered. We will try again tomorrow.\n")
sample(L, "meeting-accepted-by-a-person", "none", "none",
       "From: Bob <bob@example.net>\nTo: alice@example.com\nSubject: Accepted: Planning\nDate: Mon, 12 Jan 2026 10:00:00 +0100\nMessage-ID: <cal-human@example.net>\nMIME-Version: 1.0\n"
       "Content-Type: text/calendar; charset=\"utf-8\"; method=REPLY\n\n" + ical.replace("Resource Room 4", "Bob").replace("room4", "bob"))
sample(L, "tls-report", "none", "none",
       "From: noreply-smtp-tls-reporting@example.net\nTo: tlsrpt@example.com\nSubject: Report Domain: example.com Submitter: example.net Report-ID: <2026.01.12T00.00.00Z+example.com@example.net>\nDate: Mon, 12 Jan 2026 00:00:00 +0000\nMessage-ID: <tlsrpt-1@example.net>\nMIME-Version: 1.0\n"
       "Content-Type: multipart/report; report-type=tlsrpt; boundary=\"tls\"\n\n--tls\nContent-Type: text/plain\n\nThis is an aggregate TLS report.\n--tls\nContent-Type: application/tlsrpt+gzip\nContent-Transfer-Encoding: base64\n\nH4sIAAAAAAAAA6tWSs7PS0nNS8ksSy1WslIqzy/KSVGqBQBOAwYGEQAAAA==\n--tls--\n")
sample(L, "postmaster-human-note", "none", "none",
       "From: Frank (IT) <frank@example.com>\nTo: all@example.com\nSubject: Re: returned mail last week\nDate: Mon, 12 Jan 2026 11:00:00 +0100\nMessage-ID: <frank-note@example.com>\n\n"
       "Some of you saw messages that could not be delivered last week. The cause is fixed.\nFrank\n")


def main():
    for family, name, kind, original, text, crlf in SAMPLES:
        base = "lookalike" if family == "lookalike" else os.path.join("written", family)
        directory = os.path.join(ROOT, base)
        os.makedirs(directory, exist_ok=True)
        data = text.replace("\r\n", "\n")
        if crlf:
            data = data.replace("\n", "\r\n")
        with open(os.path.join(directory, name + ".eml"), "w", encoding="utf-8", newline="") as f:
            f.write(data)
        with open(os.path.join(directory, name + ".expect"), "w") as f:
            f.write(f"kind: {kind}\noriginal: {original}\n")
    print(f"{len(SAMPLES)} samples")


main()

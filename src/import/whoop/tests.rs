use chrono::FixedOffset;

use super::cells::{parse_local_time, parse_number, parse_offset};
use super::columns::normalise_header;
use super::*;
use crate::event::{
    BodyTemperatureData, Decoder, EventData, HeartRateVariabilityData, OxygenSaturationData,
    RespiratoryRateData, RestingHeartRateData, SleepEpisodeData,
};

/// The columns the importer reads, in the order of a real export (others are ignored).
const HEADER: &str = "Cycle start time,Cycle end time,Cycle timezone,\
    Resting heart rate (bpm),Heart rate variability (ms),Skin temp (celsius),Blood oxygen %,\
    Sleep onset,Wake onset,Respiratory rate (rpm),Asleep duration (min),\
    In bed duration (min),Awake duration (min),Sleep efficiency %";

fn import(csv: &str) -> WhoopImport {
    match import_whoop(csv.as_bytes(), "u1") {
        Ok(import) => import,
        Err(e) => panic!("import failed: {e}"),
    }
}

fn csv(rows: &[&str]) -> String {
    let mut text = format!("{HEADER}\n");
    for row in rows {
        text.push_str(row);
        text.push('\n');
    }
    text
}

fn of_type(import: &WhoopImport, ty: EventType) -> Vec<&Event> {
    import
        .events
        .iter()
        .filter(|e| e.event_type() == ty)
        .collect()
}

fn assert_sorted(events: &[Event]) {
    assert!(
        events.windows(2).all(|w| w[0].time <= w[1].time),
        "events not sorted by time"
    );
}

#[test]
fn newest_first_export_with_open_cycle_comes_out_sorted() {
    let import = import(&csv(&[
        // The open current cycle: no end time, but its night is complete.
        "2022-11-10 00:00:50,,UTC-05:00,42,127,34.21,95.70,2022-11-10 00:00:50,2022-11-10 06:55:10,14.4,372,414,42,90",
        "2022-11-08 23:29:29,2022-11-10 01:00:50,UTC-04:00,46,137,33.24,95.83,2022-11-08 23:29:29,2022-11-09 06:30:03,15.1,400,420,20,96",
        "2022-11-07 22:10:00,2022-11-08 23:29:29,UTC-04:00,48,120,33.50,96.00,2022-11-07 22:10:00,2022-11-08 06:00:00,15.0,410,430,20,95",
    ]));
    assert_eq!(import.rows, 3);
    assert!(import.skipped_rows.is_empty(), "{:?}", import.skipped_rows);
    assert_eq!(import.events.len(), 18);
    assert_sorted(&import.events);
    let nights: Vec<String> = of_type(&import, EventType::HeartRateVariability)
        .iter()
        .map(|e| e.time.local_date().to_string())
        .collect();
    assert_eq!(nights, ["2022-11-08", "2022-11-09", "2022-11-10"]);
    let last = &import.events[import.events.len() - 1];
    assert_eq!(last.time.to_rfc3339(), "2022-11-10T06:55:10-05:00");
    // Within a night the types keep one fixed order.
    let types: Vec<&str> = import.events[..6]
        .iter()
        .map(|e| e.event_type().name())
        .collect();
    assert_eq!(
        types,
        [
            "heart_rate_variability",
            "resting_heart_rate",
            "sleep_episode",
            "oxygen_saturation",
            "body_temperature",
            "respiratory_rate"
        ]
    );
}

#[test]
fn payloads_ids_and_source() {
    let import = import(&csv(&[
        "2024-03-09 23:40:00,,UTC+03:00,55,61.5,33.2,96.5,2024-03-09 23:40:00,2024-03-10 07:10:00,15.2,420,450,30,93",
    ]));
    let by_type = |ty| of_type(&import, ty)[0].data.clone();
    assert_eq!(
        by_type(EventType::HeartRateVariability),
        EventData::HeartRateVariability(HeartRateVariabilityData {
            rmssd: 61.5,
            sdnn: None
        })
    );
    assert_eq!(
        by_type(EventType::RestingHeartRate),
        EventData::RestingHeartRate(RestingHeartRateData { heart_rate: 55.0 })
    );
    let onset = EventTime::parse("2024-03-09T23:40:00+03:00").ok();
    assert_eq!(
        by_type(EventType::SleepEpisode),
        EventData::SleepEpisode(SleepEpisodeData {
            sleep_onset: onset,
            total_sleep_time: 420.0,
            time_in_bed: Some(450.0),
            sleep_maintenance_efficiency_percentage: Some(93.0),
            latency_to_sleep_onset: None,
            wake_after_sleep_onset: Some(30.0),
            number_of_awakenings: None,
            is_main_sleep: None,
        })
    );
    assert_eq!(
        by_type(EventType::OxygenSaturation),
        EventData::OxygenSaturation(OxygenSaturationData {
            oxygen_saturation: 96.5
        })
    );
    assert_eq!(
        by_type(EventType::BodyTemperature),
        EventData::BodyTemperature(BodyTemperatureData {
            body_temperature: 33.2,
            measurement_location: Some("skin".into())
        })
    );
    assert_eq!(
        by_type(EventType::RespiratoryRate),
        EventData::RespiratoryRate(RespiratoryRateData {
            respiratory_rate: 15.2
        })
    );
    for event in &import.events {
        assert_eq!(event.source, "whoop");
        assert_eq!(event.user_id, "u1");
        assert_eq!(
            event.id,
            format!(
                "whoop:u1:{}:2024-03-10T07:10:00+03:00",
                event.event_type().name()
            )
        );
    }
}

#[test]
fn events_pass_the_event_schemas() {
    let import = import(&csv(&[
        "2024-03-09 23:40:00,,UTC+03:00,55,61.5,33.2,96.5,2024-03-09 23:40:00,2024-03-10 07:10:00,15.2,420,450,30,93",
        "2024-03-08 23:40:00,,UTCZ,55,61.5,33.2,96.5,2024-03-08 23:40:00,2024-03-09 07:10:00,15.2,420,,,",
    ]));
    let decoder = Decoder::new();
    assert_eq!(import.events.len(), 12);
    for event in &import.events {
        let line = event.to_json().to_string();
        match decoder.decode(line.as_bytes()) {
            Ok(decoded) => assert_eq!(&decoded, event),
            Err(e) => panic!("{line}: {e}"),
        }
    }
}

#[test]
fn user_ids_that_run_would_dead_letter_are_refused() {
    let rows = csv(&[
        "2024-03-09 23:40:00,,UTC+03:00,55,61.5,33.2,96.5,2024-03-09 23:40:00.123456789,2024-03-10 07:10:00.123456789,15.2,420,450,30,93",
    ]);
    for user in ["", "   ", "\t", "alice\n", "bo\u{1b}b"] {
        match import_whoop(rows.as_bytes(), user) {
            Err(WhoopError::User(_)) => {}
            other => panic!("{user:?}: expected a refusal, got {other:?}"),
        }
    }
    // The longest accepted id still gives events the decoder takes whole; one more
    // character is refused instead of being dead-lettered later.
    let longest = (1..=MAX_USER_ID_CHARS)
        .rev()
        .find(|&n| check_user(&"u".repeat(n)).is_ok())
        .expect("some length is accepted");
    assert!(longest >= 150, "{longest}");
    let import = import_whoop(rows.as_bytes(), &"u".repeat(longest)).expect("imports");
    assert_eq!(import.events.len(), 6);
    let decoder = Decoder::new();
    for event in &import.events {
        let line = event.to_json().to_string();
        if let Err(e) = decoder.decode(line.as_bytes()) {
            panic!("{line}: {e}");
        }
    }
    let e = import_whoop(rows.as_bytes(), &"u".repeat(longest + 1)).expect_err("too long");
    assert!(e.to_string().contains("at most"), "{e}");
}

#[test]
fn offsets_decide_the_local_date() {
    let import = import(&csv(&[
        // 00:30 at UTC+03:00 is 21:30 UTC the day before; the night is the local date.
        "2024-03-09 22:00:00,,UTC+03:00,55,60,,,2024-03-09 22:00:00,2024-03-10 00:30:00,,,,,",
        // 21:30 at UTC-04:00 is 01:30 UTC the day after.
        "2024-03-07 14:00:00,,UTC-04:00,55,60,,,2024-03-07 14:00:00,2024-03-07 21:30:00,,,,,",
        "2024-03-04 23:00:00,,UTCZ,55,60,,,2024-03-04 23:00:00,2024-03-05 07:00:00,,,,,",
    ]));
    let hrv = of_type(&import, EventType::HeartRateVariability);
    let seen: Vec<(String, i32, String)> = hrv
        .iter()
        .map(|e| {
            (
                e.time.local_date().to_string(),
                e.time.offset_seconds(),
                e.time.to_rfc3339(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("2024-03-05".into(), 0, "2024-03-05T07:00:00Z".into()),
            (
                "2024-03-07".into(),
                -4 * 3600,
                "2024-03-07T21:30:00-04:00".into()
            ),
            (
                "2024-03-10".into(),
                3 * 3600,
                "2024-03-10T00:30:00+03:00".into()
            ),
        ]
    );
    assert_eq!(
        hrv[2].id,
        "whoop:u1:heart_rate_variability:2024-03-10T00:30:00+03:00"
    );
    assert_eq!(
        hrv[0].id,
        "whoop:u1:heart_rate_variability:2024-03-05T07:00:00Z"
    );
    // The UTC dates differ from the nights, which is the point.
    assert_eq!(hrv[1].time.0.naive_utc().date().to_string(), "2024-03-08");
    assert_eq!(hrv[2].time.0.naive_utc().date().to_string(), "2024-03-09");
}

#[test]
fn dst_change_between_rows_keeps_each_rows_offset() {
    // Europe/Berlin moved to summer time on 2024-03-31 at 02:00.
    let import = import(&csv(&[
        "2024-03-31 23:00:00,,UTC+02:00,50,70,,,2024-03-31 23:00:00,2024-04-01 07:00:00,,,,,",
        "2024-03-30 23:00:00,2024-03-31 23:00:00,UTC+02:00,50,70,,,2024-03-30 23:00:00,2024-03-31 07:00:00,,,,,",
        "2024-03-29 23:00:00,2024-03-30 23:00:00,UTC+01:00,50,70,,,2024-03-29 23:00:00,2024-03-30 07:00:00,,,,,",
    ]));
    let hrv = of_type(&import, EventType::HeartRateVariability);
    let nights: Vec<(String, i32)> = hrv
        .iter()
        .map(|e| (e.time.local_date().to_string(), e.time.offset_seconds()))
        .collect();
    assert_eq!(
        nights,
        [
            ("2024-03-30".into(), 3600),
            ("2024-03-31".into(), 7200),
            ("2024-04-01".into(), 7200)
        ]
    );
    // 07:00 local on both sides of the change is 23 hours apart in absolute time.
    assert_eq!(hrv[1].time.millis() - hrv[0].time.millis(), 23 * 3_600_000);
    assert_eq!(hrv[2].time.millis() - hrv[1].time.millis(), 24 * 3_600_000);
}

#[test]
fn empty_cells_emit_nothing_of_that_type() {
    let import = import(&csv(&[
        // No HRV, no SpO2, no asleep duration (so no sleep episode despite time in bed).
        "2024-05-01 23:00:00,,UTC+02:00,52,,33.1,,2024-05-01 23:00:00,2024-05-02 07:00:00,14.0,,480,,",
        // Only the asleep duration among the sleep fields.
        "2024-04-30 23:00:00,,UTC+02:00,,,,,,2024-05-01 07:00:00,,400,,,",
    ]));
    assert!(import.skipped_rows.is_empty(), "{:?}", import.skipped_rows);
    let types: Vec<&str> = import
        .events
        .iter()
        .map(|e| e.event_type().name())
        .collect();
    assert_eq!(
        types,
        [
            "sleep_episode",
            "resting_heart_rate",
            "body_temperature",
            "respiratory_rate"
        ]
    );
    assert_eq!(
        import.events[0].data,
        EventData::SleepEpisode(SleepEpisodeData {
            sleep_onset: None,
            total_sleep_time: 400.0,
            time_in_bed: None,
            sleep_maintenance_efficiency_percentage: None,
            latency_to_sleep_onset: None,
            wake_after_sleep_onset: None,
            number_of_awakenings: None,
            is_main_sleep: None,
        })
    );
}

#[test]
fn rows_without_wake_onset() {
    let import = import(&csv(&[
        "2024-05-02 23:00:00,,UTC+02:00,52,60,,,2024-05-02 23:00:00,2024-05-03 07:00:00,,,,,",
        // A placeholder cycle without a sleep: nothing lost, nothing reported.
        "2024-05-02 00:00:00,2024-05-02 23:00:00,UTC+02:00,,,,,,,,,,,",
        // Metric values but no wake onset: reported.
        "2024-05-01 00:00:00,2024-05-02 00:00:00,UTC+02:00,52,60,,,,,,,,,",
    ]));
    assert_eq!(import.rows, 3);
    assert_eq!(import.events.len(), 2);
    assert_eq!(import.skipped_rows.len(), 1, "{:?}", import.skipped_rows);
    let (line, reason) = &import.skipped_rows[0];
    assert_eq!(*line, 4);
    assert!(
        reason.contains("Wake onset") && reason.contains("2 metric value"),
        "{reason}"
    );
}

#[test]
fn snake_case_headers_read_the_same_columns() {
    let display = import(&csv(&[
        "2024-03-09 23:40:00,,UTC+03:00,55,61.5,33.2,96.5,2024-03-09 23:40:00,2024-03-10 07:10:00,15.2,420,450,30,93",
    ]));
    let snake = "cycle_start_time,cycle_end_time,cycle_timezone,resting_heart_rate_bpm,\
        heart_rate_variability_ms,skin_temp_celsius,blood_oxygen_pct,sleep_onset,wake_onset,\
        respiratory_rate_rpm,asleep_duration_min,in_bed_duration_min,awake_duration_min,\
        sleep_efficiency_pct\n\
        2024-03-09 23:40:00,,UTC+03:00,55,61.5,33.2,96.5,2024-03-09 23:40:00,2024-03-10 07:10:00,15.2,420,450,30,93\n";
    let snake = import(snake);
    assert_eq!(display.events.len(), 6);
    assert_eq!(snake.events, display.events);
    // `sleep_efficiency` without a unit, in a different column order.
    let reordered = "wake_onset,sleep_efficiency,cycle_timezone,asleep_duration_min\n\
        2024-03-10 07:10:00,93,UTC+03:00,420\n";
    let reordered = import(reordered);
    assert_eq!(
        reordered.events[0].data,
        EventData::SleepEpisode(SleepEpisodeData {
            sleep_onset: None,
            total_sleep_time: 420.0,
            time_in_bed: None,
            sleep_maintenance_efficiency_percentage: Some(93.0),
            latency_to_sleep_onset: None,
            wake_after_sleep_onset: None,
            number_of_awakenings: None,
            is_main_sleep: None,
        })
    );
}

#[test]
fn header_normalisation() {
    assert_eq!(
        normalise_header("Heart rate variability (ms)"),
        "heart_rate_variability"
    );
    assert_eq!(
        normalise_header("heart_rate_variability_ms"),
        "heart_rate_variability"
    );
    assert_eq!(normalise_header("Sleep efficiency %"), "sleep_efficiency");
    assert_eq!(normalise_header("sleep_efficiency_pct"), "sleep_efficiency");
    assert_eq!(
        normalise_header("\u{feff}Cycle start time"),
        "cycle_start_time"
    );
    assert_eq!(normalise_header("Skin temp (celsius)"), "skin_temp");
    assert_eq!(
        normalise_header("Deep (SWS) duration (min)"),
        "deep_sws_duration"
    );
}

#[test]
fn missing_required_column_names_it_and_lists_headers() {
    let err = import_whoop(
        "Cycle start time,Cycle timezone,Heart rate variability (ms)\n2024-01-01 00:00:00,UTCZ,50\n"
            .as_bytes(),
        "u1",
    )
    .err();
    let Some(err @ WhoopError::MissingColumns { .. }) = err else {
        panic!("expected MissingColumns, got {err:?}");
    };
    let message = err.to_string();
    assert!(
        message.contains("missing column(s) \"Wake onset\";"),
        "{message}"
    );
    assert!(
        message.contains(
            "headers found: \"Cycle start time\", \"Cycle timezone\", \"Heart rate variability (ms)\""
        ),
        "{message}"
    );

    let no_metrics = import_whoop("Wake onset,Cycle timezone\n".as_bytes(), "u1").err();
    let message = no_metrics.map(|e| e.to_string()).unwrap_or_default();
    assert!(
        message.contains("at least one of: Heart rate variability (ms)"),
        "{message}"
    );

    let empty = import_whoop("".as_bytes(), "u1").err();
    let message = empty.map(|e| e.to_string()).unwrap_or_default();
    assert!(
        message.contains("\"Wake onset\", \"Cycle timezone\""),
        "{message}"
    );
    assert!(message.contains("headers found: (none)"), "{message}");
}

#[test]
fn bom_crlf_quotes_spaces_and_time_formats() {
    let text = "\u{feff}Cycle start time , \"Cycle timezone\",Heart rate variability (ms),\
        Sleep onset,Wake onset,Asleep duration (min)\r\n\
        \"2024-06-01 23:00:00\", UTC+02:00 ,\" 70 \",2024-06-01T23:00,\"2024-06-02T07:05\",400 \r\n\
        2024-05-31 23:00:00,UTC+02:00,65,2024-05-31 23:00:00.5,2024-06-01 06:59:59,380\r\n";
    let import = import(text);
    assert!(import.skipped_rows.is_empty(), "{:?}", import.skipped_rows);
    assert_eq!(import.rows, 2);
    let times: Vec<String> = import.events.iter().map(|e| e.time.to_rfc3339()).collect();
    assert_eq!(
        times,
        [
            "2024-06-01T06:59:59+02:00",
            "2024-06-01T06:59:59+02:00",
            "2024-06-02T07:05:00+02:00",
            "2024-06-02T07:05:00+02:00"
        ]
    );
    assert_eq!(
        import.events[2].data,
        EventData::HeartRateVariability(HeartRateVariabilityData {
            rmssd: 70.0,
            sdnn: None
        })
    );
    let EventData::SleepEpisode(sleep) = &import.events[3].data else {
        panic!("expected a sleep episode, got {:?}", import.events[3].data);
    };
    assert_eq!(
        sleep.sleep_onset.map(|t| t.to_rfc3339()).as_deref(),
        Some("2024-06-01T23:00:00+02:00")
    );
}

#[test]
fn imported_values_survive_their_own_json() {
    // Found by the whoop_import fuzz target: this SpO2 parses (correctly rounded) to
    // 95.76666666666667, whose JSON the decoder read back as 95.76666666666668.
    let import = import(&csv(&[
        "2022-11-10 00:00:50,,UTC-05:00,42,127,34.21,95.766666666666666666666666666666666666666666666666666666666666666666660,2022-11-10 00:00:50,2022-11-10 06:55:10,14.4,372,414,42,90",
    ]));
    assert_eq!(import.events.len(), 6);
    let decoder = Decoder::new();
    for event in &import.events {
        match decoder.decode(event.to_json().to_string().as_bytes()) {
            Ok(decoded) => assert_eq!(&decoded, event),
            Err(e) => panic!("{}: {e}", event.id),
        }
    }
}

#[test]
fn second_60_is_not_a_time() {
    // Found by the whoop_import fuzz target: the event time 06:00:60-04:00 was refused by
    // the decoder ("is not a date-time").
    let import = import(&csv(&[
        "2022-11-07 22:10:00,,UTC-04:00,48,120,33.50,96.00,2022-11-07 22:10:00,2022-11-08 06:00:60,15.0,410,430,20,95",
        "2022-11-08 22:10:00,,UTC-04:00,48,120,33.50,96.00,2022-11-08 22:10:60,2022-11-09 06:00:00,15.0,410,430,20,95",
    ]));
    let reasons: Vec<&str> = import
        .skipped_rows
        .iter()
        .map(|(_, r)| r.as_str())
        .collect();
    assert_eq!(
        reasons,
        [
            "Wake onset \"2022-11-08 06:00:60\" is not a date and time \
             (YYYY-MM-DD HH:MM[:SS]); row not imported",
            "Sleep onset \"2022-11-08 22:10:60\" is not a date and time; left out of the \
             sleep episode",
        ]
    );
    assert_eq!(import.events.len(), 6);
    let decoder = Decoder::new();
    for event in &import.events {
        if let Err(e) = decoder.decode(event.to_json().to_string().as_bytes()) {
            panic!("{}: {e}", event.id);
        }
    }
}

#[test]
fn only_episodes_the_decoder_accepts_are_imported() {
    let import = import(&csv(&[
        // Asleep 400 min but in bed 380: the in-bed duration is left out.
        "2024-05-01 23:00:00,,UTC+02:00,52,70,,,2024-05-01 23:00:00,2024-05-02 07:00:00,,400,380,,",
        // Sleep onset after the wake onset: the onset is left out.
        "2024-05-02 23:00:00,,UTC+02:00,52,70,,,2024-05-03 08:00:00,2024-05-03 07:00:00,,400,420,,",
        // Woke in 1999: the row is not imported.
        "1999-05-02 23:00:00,,UTC+02:00,52,70,,,1999-05-02 23:00:00,1999-05-03 07:00:00,,400,420,,",
    ]));
    let sleeps = of_type(&import, EventType::SleepEpisode);
    assert_eq!(sleeps.len(), 2);
    let (EventData::SleepEpisode(first), EventData::SleepEpisode(second)) =
        (&sleeps[0].data, &sleeps[1].data)
    else {
        panic!("expected sleep episodes: {sleeps:?}");
    };
    assert_eq!((first.time_in_bed, first.total_sleep_time), (None, 400.0));
    assert!(first.sleep_onset.is_some());
    assert_eq!(
        (second.sleep_onset, second.time_in_bed),
        (None, Some(420.0))
    );
    let reasons: Vec<&str> = import
        .skipped_rows
        .iter()
        .map(|(_, r)| r.as_str())
        .collect();
    assert_eq!(
        reasons,
        [
            "In bed duration (min) 380 is less than the Asleep duration (min) 400; left out \
             of the sleep episode",
            "Sleep onset 2024-05-03T08:00:00+02:00 is after the wake onset \
             2024-05-03T07:00:00+02:00; left out of the sleep episode",
            "Wake onset \"1999-05-03 07:00:00\" is before 2000-01-01; row not imported",
        ],
        "{:?}",
        import.skipped_rows
    );
    let decoder = Decoder::new();
    for event in &import.events {
        if let Err(e) = decoder.decode_value(event.to_json()) {
            panic!("{}: {e}", event.id);
        }
    }
}

#[test]
fn out_of_range_and_malformed_values_are_skipped_and_reported() {
    let import = import(&csv(&[
        // HRV 0 is below the schema minimum 0.1; skin temp 50 above 45; in bed 2000 above 1440.
        "2024-05-01 23:00:00,,UTC+02:00,52,0,50,abc,2024-05-01 23:00:00,2024-05-02 07:00:00,14.0,400,2000,,",
    ]));
    let types: Vec<&str> = import
        .events
        .iter()
        .map(|e| e.event_type().name())
        .collect();
    assert_eq!(
        types,
        ["resting_heart_rate", "sleep_episode", "respiratory_rate"]
    );
    let EventData::SleepEpisode(sleep) = &import.events[1].data else {
        panic!("expected a sleep episode");
    };
    assert_eq!(sleep.total_sleep_time, 400.0);
    assert_eq!(sleep.time_in_bed, None);
    let reasons: Vec<&str> = import
        .skipped_rows
        .iter()
        .map(|(_, r)| r.as_str())
        .collect();
    assert_eq!(reasons.len(), 4, "{reasons:?}");
    assert!(import.skipped_rows.iter().all(|(line, _)| *line == 2));
    assert!(
        reasons[0].starts_with("Heart rate variability (ms) 0 is outside the range 0.1..=1000"),
        "{}",
        reasons[0]
    );
    assert!(
        reasons[1].contains("In bed duration (min) 2000")
            && reasons[1].ends_with("left out of the sleep episode"),
        "{}",
        reasons[1]
    );
    assert!(
        reasons[2].contains("Blood oxygen % \"abc\" is not a number"),
        "{}",
        reasons[2]
    );
    assert!(
        reasons[3].contains("Skin temp (celsius) 50 is outside the range 20..=45"),
        "{}",
        reasons[3]
    );
}

#[test]
fn ranges_come_from_the_schemas() {
    let ranges = Ranges::from_schemas();
    assert_eq!(
        ranges.get(EventType::HeartRateVariability, "rmssd"),
        (Some(0.1), Some(1000.0))
    );
    assert_eq!(
        ranges.get(EventType::SleepEpisode, "time_in_bed"),
        (Some(0.0), Some(1440.0))
    );
    assert_eq!(
        ranges.get(EventType::BodyTemperature, "body_temperature"),
        (Some(20.0), Some(45.0))
    );
    for (ty, field) in [
        (EventType::RestingHeartRate, "heart_rate"),
        (EventType::SleepEpisode, "total_sleep_time"),
        (
            EventType::SleepEpisode,
            "sleep_maintenance_efficiency_percentage",
        ),
        (EventType::SleepEpisode, "wake_after_sleep_onset"),
        (EventType::OxygenSaturation, "oxygen_saturation"),
        (EventType::RespiratoryRate, "respiratory_rate"),
    ] {
        let (min, max) = ranges.get(ty, field);
        assert!(
            min.is_some() && max.is_some(),
            "no range for {}.{field}",
            ty.name()
        );
    }
}

#[test]
fn bad_rows_are_skipped_whole() {
    let import = import(&csv(&[
        "2024-05-03 23:00:00,,UTC+25:00,52,60,,,,2024-05-04 07:00:00,,,,,",
        "2024-05-02 23:00:00,,Europe/Berlin,52,60,,,,2024-05-03 07:00:00,,,,,",
        "2024-05-01 23:00:00,,UTC+02:00,52,60,,,,02/05/2024 07:00,,,,,",
        "2024-04-30 23:00:00,,UTC+02:00,52,60,,,,2024-05-01 07:00:00,,,,,,,",
        "2024-04-30 23:00:00,,UTC+02:00,52,60,,,,2024-05-01 07:00:00,,,,,,,x",
    ]));
    assert_eq!(import.rows, 5);
    // Only the row with empty extra cells is good.
    assert_eq!(import.events.len(), 2);
    let lines: Vec<usize> = import.skipped_rows.iter().map(|(l, _)| *l).collect();
    assert_eq!(lines, [2, 3, 4, 6]);
    assert!(import.skipped_rows[0].1.contains("\"UTC+25:00\""));
    assert!(import.skipped_rows[1]
        .1
        .contains("Cycle timezone \"Europe/Berlin\""));
    assert!(import.skipped_rows[2]
        .1
        .contains("Wake onset \"02/05/2024 07:00\""));
    assert!(import.skipped_rows[3]
        .1
        .contains("16 fields but the header has 14"));
}

#[test]
fn duplicate_nights_keep_the_first_row() {
    let import = import(&csv(&[
        "2024-05-01 23:00:00,,UTC+02:00,52,60,,,,2024-05-02 07:00:00,,,,,",
        "2024-05-01 23:00:00,,UTC+02:00,53,61,,,,2024-05-02 07:00:00,,,,,",
    ]));
    assert_eq!(import.events.len(), 2);
    assert_eq!(
        import.events[0].data,
        EventData::HeartRateVariability(HeartRateVariabilityData {
            rmssd: 60.0,
            sdnn: None
        })
    );
    assert_eq!(import.skipped_rows.len(), 1);
    assert_eq!(import.skipped_rows[0].0, 3);
    assert!(import.skipped_rows[0].1.starts_with("duplicate of line 2"));
}

#[test]
fn naps_are_not_nights() {
    let text = "Cycle timezone,Sleep onset,Wake onset,Asleep duration (min),Nap\n\
        UTC-04:00,2024-06-23 20:24:26,2024-06-24 05:44:09,504,false\n\
        UTC-04:00,2024-06-23 14:00:00,2024-06-23 14:40:00,38,true\n";
    let import = import(text);
    assert_eq!(import.events.len(), 1);
    assert_eq!(import.skipped_rows.len(), 1);
    assert_eq!(import.skipped_rows[0].0, 3);
}

#[test]
fn offsets_and_times_parse() {
    let secs = |t| parse_offset(t).map(|o| o.local_minus_utc());
    assert_eq!(secs("UTC+03:00"), Some(10800));
    assert_eq!(secs("UTC-05:00"), Some(-18000));
    assert_eq!(secs("UTCZ"), Some(0));
    assert_eq!(secs("utc"), Some(0));
    assert_eq!(secs("UTC+0530"), Some(19800));
    assert_eq!(secs("UTC-3"), Some(-10800));
    assert_eq!(secs("+02:00"), Some(7200));
    assert_eq!(secs("UTC+3:7:0"), None);
    assert_eq!(secs("UTC 3"), None);
    assert_eq!(secs("UTC+é12"), None);
    // An empty cell is no timezone, not UTC.
    assert_eq!(secs(""), None);
    let utc = FixedOffset::east_opt(0);
    let parse = |t| {
        utc.and_then(|o| parse_local_time(t, o))
            .map(|t| t.to_rfc3339())
    };
    assert_eq!(
        parse("2024-01-02 03:04"),
        Some("2024-01-02T03:04:00Z".into())
    );
    assert_eq!(
        parse("2024-01-02T03:04:05"),
        Some("2024-01-02T03:04:05Z".into())
    );
    assert_eq!(parse("2024-01-02"), None);
    assert_eq!(parse_number("95,5"), Some(95.5));
    assert_eq!(parse_number("NaN"), None);
}

const SMALL_EXPORT: &str = "\
Cycle start time,Cycle end time,Cycle timezone,Recovery score %,Resting heart rate (bpm),Heart rate variability (ms),Skin temp (celsius),Blood oxygen %,Day Strain,Energy burned (cal),Max HR (bpm),Average HR (bpm),Sleep onset,Wake onset,Sleep performance %,Respiratory rate (rpm),Asleep duration (min),In bed duration (min),Light sleep duration (min),Deep (SWS) duration (min),REM duration (min),Awake duration (min),Sleep need (min),Sleep debt (min),Sleep efficiency %,Sleep consistency %\n\
2023-01-04 23:10:00,,UTC+01:00,70,50,80,33.50,96.10,,,,,2023-01-04 23:10:00,2023-01-05 07:00:00,85,15.0,430,470,200,100,130,40,520,30,91,70\n\
2023-01-03 22:45:00,2023-01-04 23:10:00,UTC+01:00,55,54,66,33.90,95.40,9.2,2100,160,70,2023-01-03 22:45:00,2023-01-04 06:30:00,75,15.4,410,465,190,95,125,55,530,40,88,65\n\
2023-01-03 00:00:00,2023-01-03 22:45:00,UTC+01:00,,,,,,0.2,150,100,70,,,,,,,,,,,,,,\n\
2023-01-01 23:30:00,2023-01-03 00:00:00,UTCZ,62,52,72,33.70,,8.1,1900,150,68,2023-01-01 23:30:00,2023-01-02 07:15:00,80,15.2,420,465,195,98,127,45,525,35,90,68\n";

#[test]
fn import_from_file_and_file_errors() {
    // A hand-written export with the full 26-column header, written to a temporary file
    // so the file-reading path is exercised without committing export-shaped data.
    let scratch = tempfile::tempdir().expect("temporary directory");
    let path = scratch.path().join("export.csv");
    std::fs::write(&path, SMALL_EXPORT).expect("write the export");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/whoop");
    let import = match import_whoop_file(&path, "fixture") {
        Ok(import) => import,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(import.rows, 4);
    assert_eq!(import.events.len(), 17);
    assert_sorted(&import.events);
    assert!(import.skipped_rows.is_empty(), "{:?}", import.skipped_rows);

    let missing = dir.join("no-such-export.csv");
    let message = import_whoop_file(&missing, "u")
        .err()
        .map(|e| e.to_string());
    let message = message.unwrap_or_default();
    assert!(
        message.starts_with("cannot open ") && message.contains("no-such-export.csv"),
        "{message}"
    );

    let bad = dir.join("missing_wake_onset.csv");
    let message = import_whoop_file(&bad, "u").err().map(|e| e.to_string());
    let message = message.unwrap_or_default();
    assert!(
        message.contains("missing_wake_onset.csv: not a WHOOP physiological_cycles export"),
        "{message}"
    );
}

fn cell() -> impl proptest::strategy::Strategy<Value = String> {
    proptest::prop_oneof![
        "2024-0[1-9]-1[0-9][ T][0-2][0-9]:[0-5][0-9](:[0-5][0-9])?",
        "UTC[+-][0-2][0-9]:[0-5]0|UTCZ|UTC[+-]é[0-9]",
        "-?[0-9]{1,4}(\\.[0-9]{1,2})?",
        "",
        "[a-z\"é %]{0,4}",
    ]
}

proptest::proptest! {
    /// Whatever rows follow a valid header, the import reports rather than panics, and
    /// what it emits is within the schemas' ranges and sorted.
    #[test]
    fn arbitrary_rows_never_panic(
        rows in proptest::collection::vec(proptest::collection::vec(cell(), 0..16), 0..8)
    ) {
        let body: Vec<String> = rows.iter().map(|r| r.join(",")).collect();
        let text = format!("{HEADER}\n{}", body.join("\r\n"));
        if let Ok(import) = import_whoop(text.as_bytes(), "p") {
            let ranges = Ranges::from_schemas();
            proptest::prop_assert!(import.events.windows(2).all(|w| w[0].time <= w[1].time));
            for event in &import.events {
                let ty = event.event_type();
                for (i, field) in ty.fields().iter().enumerate() {
                    if let crate::event::Value::Num(n) = event.data.field(i) {
                        proptest::prop_assert!(ranges.check(ty, field.name, n).is_ok());
                    }
                }
            }
        }
    }
}

/// Imports every real export under `$VIGIL_REAL_DATA/whoop` (skipped when it is unset) and
/// checks each night against the CSV's own wake-onset text.
#[test]
fn real_exports() {
    let Some(root) = std::env::var_os("VIGIL_REAL_DATA") else {
        eprintln!("VIGIL_REAL_DATA unset; real WHOOP exports not checked");
        return;
    };
    let mut files = Vec::new();
    let whoop = Path::new(&root).join("whoop");
    let Ok(dirs) = std::fs::read_dir(&whoop) else {
        panic!("cannot read {}", whoop.display());
    };
    for dir in dirs.flatten() {
        for file in std::fs::read_dir(dir.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = file.file_name().to_string_lossy().to_lowercase();
            let is_cycles =
                name.contains("physiological_cycles") || name.contains("physiologische_zyklen");
            if is_cycles && name.ends_with(".csv") {
                files.push(file.path());
            }
        }
    }
    files.sort();
    assert!(!files.is_empty(), "no exports under {}", whoop.display());
    let decoder = Decoder::new();
    for path in &files {
        let import = match import_whoop_file(path, "real") {
            Ok(import) => import,
            Err(e) => panic!("{e}"),
        };
        assert_sorted(&import.events);
        // The wake onsets as written, each with its events' local time and date.
        let mut expected: Vec<String> = Vec::new();
        let mut reader = match csv::Reader::from_path(path) {
            Ok(reader) => reader,
            Err(e) => panic!("{}: {e}", path.display()),
        };
        let wake = reader
            .headers()
            .ok()
            .and_then(|h| h.iter().position(|h| h == "Wake onset"));
        let Some(wake) = wake else {
            panic!("{}: no Wake onset column", path.display());
        };
        for record in reader.records().flatten() {
            if let Some(text) = record.get(wake).filter(|t| !t.is_empty()) {
                expected.push(text.to_string());
            }
        }
        expected.sort();
        expected.dedup();
        let mut nights: Vec<String> = import
            .events
            .iter()
            .map(|e| {
                let local = e.time.0.format("%Y-%m-%d %H:%M:%S").to_string();
                assert_eq!(e.time.local_date().to_string(), local[..10]);
                local
            })
            .collect();
        nights.sort();
        nights.dedup();
        assert_eq!(nights, expected, "{}", path.display());
        for event in &import.events {
            if let Err(e) = decoder.decode_value(event.to_json()) {
                panic!("{}: {}: {e}", path.display(), event.id);
            }
        }
        let count = |ty| of_type(&import, ty).len();
        eprintln!(
            "{}: rows {}, nights {}, events {} (hrv {}, rhr {}, sleep {}, spo2 {}, \
             temp {}, resp {}), skipped {}",
            path.strip_prefix(&whoop).unwrap_or(path).display(),
            import.rows,
            nights.len(),
            import.events.len(),
            count(EventType::HeartRateVariability),
            count(EventType::RestingHeartRate),
            count(EventType::SleepEpisode),
            count(EventType::OxygenSaturation),
            count(EventType::BodyTemperature),
            count(EventType::RespiratoryRate),
            import.skipped_rows.len()
        );
        for (line, reason) in &import.skipped_rows {
            eprintln!("  line {line}: {reason}");
        }
    }
}

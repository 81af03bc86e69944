; Cooking domain for plannerl: a STRIPS rendering of Robotouille's synchronous kitchen.
;
; One robot moves between stations (tables, stoves, cutting boards) and builds stacks of items.
; Facts mirror Robotouille's state: where the robot is, which stations are free of robots, which
; stack each item is in, what lies directly on what, which items are clear, and the hand.
; Cooking is one action on a stove; cutting takes three actions on a board (cut-progress
; steps through the static chain zero -> one -> two -> three).
(define (domain cooking)
  (:requirements :strips :typing :negative-preconditions)
  (:types
    robot station item count - object
    table stove board - station
    bottombun topbun bread patty cheese lettuce tomato onion - item)
  (:predicates
    (at ?r - robot ?s - station)
    (vacant ?s - station)
    (in ?i - item ?s - station)
    (on-station ?i - item ?s - station)
    (on ?i - item ?j - item)
    (clear ?i - item)
    (empty ?s - station)
    (hand-empty ?r - robot)
    (holding ?r - robot ?i - item)
    (cookable ?i - item)
    (cooked ?i - item)
    (cuttable ?i - item)
    (cut-progress ?i - item ?c - count)
    (next-count ?c ?d - count))

  (:action move
    :parameters (?r - robot ?from - station ?to - station)
    :precondition (and (at ?r ?from) (vacant ?to))
    :effect (and (not (at ?r ?from)) (at ?r ?to) (vacant ?from) (not (vacant ?to))))

  (:action pick-up
    :parameters (?r - robot ?i - item ?s - station)
    :precondition (and (at ?r ?s) (hand-empty ?r) (on-station ?i ?s) (clear ?i))
    :effect (and (holding ?r ?i) (not (hand-empty ?r)) (not (on-station ?i ?s))
                 (not (in ?i ?s)) (empty ?s)))

  (:action place
    :parameters (?r - robot ?i - item ?s - station)
    :precondition (and (at ?r ?s) (holding ?r ?i) (empty ?s))
    :effect (and (not (holding ?r ?i)) (hand-empty ?r) (on-station ?i ?s) (in ?i ?s)
                 (not (empty ?s))))

  (:action stack
    :parameters (?r - robot ?i - item ?j - item ?s - station)
    :precondition (and (at ?r ?s) (holding ?r ?i) (in ?j ?s) (clear ?j))
    :effect (and (not (holding ?r ?i)) (hand-empty ?r) (on ?i ?j) (in ?i ?s)
                 (not (clear ?j))))

  (:action unstack
    :parameters (?r - robot ?i - item ?j - item ?s - station)
    :precondition (and (at ?r ?s) (hand-empty ?r) (on ?i ?j) (clear ?i) (in ?i ?s))
    :effect (and (holding ?r ?i) (not (hand-empty ?r)) (not (on ?i ?j)) (not (in ?i ?s))
                 (clear ?j)))

  (:action cut
    :parameters (?r - robot ?i - item ?s - board ?c - count ?d - count)
    :precondition (and (at ?r ?s) (hand-empty ?r) (on-station ?i ?s) (clear ?i)
                       (cuttable ?i) (cut-progress ?i ?c) (next-count ?c ?d))
    :effect (and (not (cut-progress ?i ?c)) (cut-progress ?i ?d)))

  (:action cook
    :parameters (?r - robot ?i - item ?s - stove)
    :precondition (and (at ?r ?s) (hand-empty ?r) (on-station ?i ?s) (clear ?i)
                       (cookable ?i) (not (cooked ?i)))
    :effect (cooked ?i)))
